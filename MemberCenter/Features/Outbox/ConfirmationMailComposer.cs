using System.Text.Encodings.Web;
using MemberCenter.Data;
using MemberCenter.Features.Subscriptions;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using MimeKit;
using Newsletter.ServiceDefaults.Mail;

namespace MemberCenter.Features.Outbox;

/// <summary>Builds the double opt-in mail, minting the confirm token that goes into its link.</summary>
public sealed class ConfirmationMailComposer(
    MemberCenterDbContext db,
    IOptions<SmtpOptions> smtp,
    IOptions<PublicUrlOptions> urls,
    IOptions<NewsletterOptions> newsletter,
    TimeProvider clock)
{
    /// <summary>
    /// The mails for a batch of subscriptions, keyed by subscription id; subscriptions that no longer wait for
    /// confirmation get none. One query for the batch, and its tokens are inserted together. A mail that cannot be
    /// built (an address MimeKit refuses) is in <c>Failures</c> with the reason, without holding up the others.
    /// </summary>
    public async Task<(Dictionary<Guid, MimeMessage> Mails, Dictionary<Guid, string> Failures)> ComposeAsync(IReadOnlyCollection<Guid> subscriptionIds, CancellationToken ct)
    {
        var targets = await (from s in db.Subscriptions
                             join l in db.MailingLists on s.ListId equals l.Id
                             join p in db.Subscribers on s.SubscriberId equals p.Id
                             where subscriptionIds.Contains(s.Id) && s.Status == SubscriptionStatus.Pending
                             select new { s.Id, ListName = l.Name, p.Email }).AsNoTracking().ToListAsync(ct);
        var now = clock.GetUtcNow();
        var mails = new Dictionary<Guid, MimeMessage>(targets.Count);
        var failures = new Dictionary<Guid, string>();
        foreach (var target in targets)
        {
            var (token, hash) = SubscriptionTokens.New();
            try
            {
                mails[target.Id] = Compose(target.ListName, target.Email, token);
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

    private MimeMessage Compose(string list, string email, string token)
    {
        var link = urls.Value.Link("/newsletter/confirm?token=" + token);
        var message = new MimeMessage();
        message.From.Add(new MailboxAddress(smtp.Value.FromName, smtp.Value.FromAddress));
        message.To.Add(MailboxAddress.Parse(email));
        message.Subject = $"Please confirm your subscription to {list}";
        message.MessageId = MimeKit.Utils.MimeUtils.GenerateMessageId(MailboxAddress.Parse(smtp.Value.FromAddress).Domain);
        var html = HtmlEncoder.Default;
        message.Body = new BodyBuilder
        {
            TextBody = $"""
                Please confirm that you want to receive "{list}".

                Open this link to confirm: {link}

                If you did not ask for this, ignore this message and you will not be subscribed.
                """,
            HtmlBody = $"""
                <p>Please confirm that you want to receive <strong>{html.Encode(list)}</strong>.</p>
                <p><a href="{html.Encode(link)}" id="confirm-link">Confirm my subscription</a></p>
                <p style="color:#666">If you did not ask for this, ignore this message and you will not be subscribed.</p>
                """,
        }.ToMessageBody();
        return message;
    }
}
