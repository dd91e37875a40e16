using MemberCenter.Data;
using MemberCenter.Features.Reader;
using MemberCenter.Features.Reader.Components;
using MemberCenter.Features.Subscriptions;
using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using MimeKit;
using Newsletter.ServiceDefaults.Mail;

namespace MemberCenter.Features.Outbox;

/// <summary>Builds the double opt-in mail, minting the confirm token that goes into its link.</summary>
public sealed class ConfirmationMailComposer(
    MemberCenterDbContext db,
    IOptions<SmtpOptions> smtp,
    IOptions<PublicUrlOptions> urls,
    IOptions<NewsletterOptions> newsletter,
    ReaderLooks looks,
    IServiceProvider services,
    ILoggerFactory loggers,
    TimeProvider clock)
{
    /// <summary>
    /// The mails for a batch of subscriptions, keyed by subscription id; subscriptions that no longer wait for
    /// confirmation get none. One query for the batch, and its tokens are inserted together. A mail that cannot be
    /// built (an address MimeKit refuses) is in <c>Failures</c> with the reason, without holding up the others.
    /// </summary>
    /// <param name="browserLanguages">The language the subscribe request's Accept-Language asked for, per subscription (<see cref="OutboxMessage.Language"/>).</param>
    public async Task<(Dictionary<Guid, MimeMessage> Mails, Dictionary<Guid, string> Failures)> ComposeAsync(IReadOnlyCollection<Guid> subscriptionIds,
        IReadOnlyDictionary<Guid, string> browserLanguages, CancellationToken ct)
    {
        var targets = await (from s in db.Subscriptions
                             join l in db.MailingLists on s.ListId equals l.Id
                             join p in db.Subscribers on s.SubscriberId equals p.Id
                             where subscriptionIds.Contains(s.Id) && s.Status == SubscriptionStatus.Pending
                             select new { s.Id, ListId = l.Id, ListName = l.Name, p.Email, s.Preferences }).AsNoTracking().ToListAsync(ct);
        var now = clock.GetUtcNow();
        var mails = new Dictionary<Guid, MimeMessage>(targets.Count);
        var failures = new Dictionary<Guid, string>();
        // The subscriber's lang preference, else the subscribe request's Accept-Language (kept on the outbox row: there
        // is no browser at mail time), else the list's default language: as the pages choose.
        var lookCache = new Dictionary<(Guid, string?, string?), ReaderLook>();
        await using var renderer = new HtmlRenderer(services, loggers);
        foreach (var target in targets)
        {
            var (token, hash) = SubscriptionTokens.New();
            var lang = ReaderLooks.LangOf(SubscriptionService.ParsePreferences(target.Preferences));
            var browser = browserLanguages.GetValueOrDefault(target.Id);
            if (!lookCache.TryGetValue((target.ListId, lang, browser), out var look))
            {
                look = lookCache[(target.ListId, lang, browser)] = await looks.ForListAsync(target.ListId, lang,
                    browser is null ? null : [new StringWithQualityHeaderValue(browser)], ct);
            }
            try
            {
                mails[target.Id] = await ComposeAsync(renderer, look, target.ListName, target.Email, token);
            }
            catch (Exception ex) when (ex is ParseException or FormatException or ArgumentException)
            {
                failures[target.Id] = "The mail could not be built: " + ex.Message;
                continue;
            }
            db.SubscriptionTokens.Add(new SubscriptionToken
            {
                Id = Guid.CreateVersion7(),
                SubscriptionId = target.Id,
                Purpose = TokenPurpose.Confirm,
                Hash = hash,
                CreatedAt = now,
                ExpiresAt = now + newsletter.Value.ConfirmTokenLifetime,
            });
        }
        await db.SaveChangesAsync(ct);
        return (mails, failures);
    }

    /// <summary>
    /// Subject and text from the tenant's branding in the reader's language, else the built-in text of that language;
    /// the HTML part is a Razor component (encoded by Razor) of the same text.
    /// </summary>
    private async Task<MimeMessage> ComposeAsync(HtmlRenderer renderer, ReaderLook look, string list, string email, string token)
    {
        var link = urls.Value.Link("/newsletter/confirm?token=" + token);
        var custom = look.Brand.ConfirmationMail.GetValueOrDefault(look.T.Language);
        var subject = custom?.Subject ?? look.T["mail.subject"];
        var text = custom?.Text ?? look.T["mail.text"];
        var message = new MimeMessage();
        message.From.Add(new MailboxAddress(smtp.Value.FromName, smtp.Value.FromAddress));
        message.To.Add(MailboxAddress.Parse(email));
        message.Subject = Texts.Fill(subject, new Dictionary<string, string> { ["list"] = list }).ReplaceLineEndings(" ");
        message.MessageId = MimeKit.Utils.MimeUtils.GenerateMessageId(MailboxAddress.Parse(smtp.Value.FromAddress).Domain);
        var plain = Texts.Fill(text, new Dictionary<string, string> { ["list"] = list, ["link"] = link });
        var footer = string.Join("\n", new[] { look.Brand.FooterText, look.Brand.PostalAddress }.Where(f => f is not null));
        var html = await renderer.Dispatcher.InvokeAsync(async () =>
            (await renderer.RenderComponentAsync<ConfirmationMailHtml>(ParameterView.FromDictionary(new Dictionary<string, object?>
            {
                [nameof(ConfirmationMailHtml.Look)] = look,
                [nameof(ConfirmationMailHtml.Text)] = text,
                [nameof(ConfirmationMailHtml.ListName)] = list,
                [nameof(ConfirmationMailHtml.Link)] = link,
            }))).ToHtmlString());
        var body = new BodyBuilder
        {
            TextBody = footer.Length == 0 ? plain : plain + "\n\n-- \n" + footer,
            HtmlBody = $"<!doctype html><html lang=\"{look.T.Language}\"><head><meta charset=\"utf-8\"></head><body>{html}</body></html>",
        };
        message.Body = body.ToMessageBody();
        message.Headers.Add(HeaderId.ContentLanguage, look.T.Language);
        return message;
    }
}
