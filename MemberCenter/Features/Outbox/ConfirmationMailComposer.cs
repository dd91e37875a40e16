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
    /// <summary>The mail, or null when the subscription no longer waits for confirmation.</summary>
    public async Task<MimeMessage?> ComposeAsync(Guid subscriptionId, CancellationToken ct)
    {
        var target = await (from s in db.Subscriptions
                            join l in db.MailingLists on s.ListId equals l.Id
                            join p in db.Subscribers on s.SubscriberId equals p.Id
                            where s.Id == subscriptionId && s.Status == SubscriptionStatus.Pending
                            select new { ListName = l.Name, p.Email }).FirstOrDefaultAsync(ct);
        if (target is null)
        {
            return null;
        }

        var (token, hash) = SubscriptionTokens.New();
        var now = clock.GetUtcNow();
        db.SubscriptionTokens.Add(new SubscriptionToken
        {
            Id = Guid.CreateVersion7(),
            SubscriptionId = subscriptionId,
            Purpose = TokenPurpose.Confirm,
            Hash = hash,
            CreatedAt = now,
            ExpiresAt = now + newsletter.Value.ConfirmTokenLifetime,
        });
        await db.SaveChangesAsync(ct);

        var link = urls.Value.Link("/newsletter/confirm?token=" + token);
        var list = target.ListName;
        var message = new MimeMessage();
        message.From.Add(new MailboxAddress(smtp.Value.FromName, smtp.Value.FromAddress));
        message.To.Add(MailboxAddress.Parse(target.Email));
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
