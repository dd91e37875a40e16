using System.Text.Encodings.Web;
using MemberCenter.Data;
using MemberCenter.Features.Outbox;
using MemberCenter.Features.Subscriptions;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using MimeKit;
using Newsletter.ServiceDefaults.Mail;
using System.Text;

namespace MemberCenter.Features.People;

/// <summary>
/// Builds the outbox's account mails (e-mail confirmation, password reset, invitation), minting their tokens as they
/// are sent: Identity's data-protected tokens for the account mails (invalid once used, as the security stamp changes),
/// a fresh random token for an invitation (its SHA-256 replaces the invitation's previous one).
/// </summary>
public sealed class AccountMailComposer(
    MemberCenterDbContext db,
    UserManager<Person> users,
    IOptions<SmtpOptions> smtp,
    IOptions<PublicUrlOptions> urls,
    TimeProvider clock)
{
    /// <summary>Mails and failures keyed by outbox message id; a message whose subject is gone gets neither.</summary>
    public async Task<(Dictionary<long, MimeMessage> Mails, Dictionary<long, string> Failures)> ComposeAsync(IReadOnlyList<OutboxMessage> messages, CancellationToken ct)
    {
        var mails = new Dictionary<long, MimeMessage>();
        var failures = new Dictionary<long, string>();
        foreach (var message in messages)
        {
            try
            {
                var mail = message.Kind switch
                {
                    OutboxKinds.AccountEmailConfirmation => await EmailConfirmationAsync(message.UserId, ct),
                    OutboxKinds.PasswordReset => await PasswordResetAsync(message.UserId, ct),
                    OutboxKinds.Invitation => await InvitationAsync(message.InvitationId, ct),
                    _ => throw new InvalidOperationException($"Unknown outbox kind '{message.Kind}'."),
                };
                if (mail is not null)
                {
                    mails[message.Id] = mail;
                }
            }
            catch (Exception ex) when (ex is ParseException or FormatException or ArgumentException or InvalidOperationException)
            {
                failures[message.Id] = "The mail could not be built: " + ex.Message;
            }
        }
        await db.SaveChangesAsync(ct);
        return (mails, failures);
    }

    private async Task<MimeMessage?> EmailConfirmationAsync(Guid? userId, CancellationToken ct)
    {
        var user = userId is null ? null : await users.FindByIdAsync(userId.Value.ToString());
        if (user?.Email is null || user.EmailConfirmed)
        {
            return null;
        }
        var code = Encode(await users.GenerateEmailConfirmationTokenAsync(user));
        var link = urls.Value.Link($"/account/confirm-email?user_id={user.Id}&code={code}");
        ct.ThrowIfCancellationRequested();
        return Compose(user.Email, "Confirm your e-mail address",
            $"Open this link to confirm your e-mail address for the newsletter platform: {link}",
            $"""<p>Confirm your e-mail address for the newsletter platform.</p><p><a href="{H(link)}" id="confirm-email-link">Confirm my address</a></p>""");
    }

    private async Task<MimeMessage?> PasswordResetAsync(Guid? userId, CancellationToken ct)
    {
        var user = userId is null ? null : await users.FindByIdAsync(userId.Value.ToString());
        if (user?.Email is null)
        {
            return null;
        }
        var code = Encode(await users.GeneratePasswordResetTokenAsync(user));
        var link = urls.Value.Link($"/account/reset-password?user_id={user.Id}&code={code}");
        ct.ThrowIfCancellationRequested();
        return Compose(user.Email, "Reset your password",
            $"Someone asked to reset your password. Open this link to choose a new one: {link}\n\nIf it was not you, ignore this message.",
            $"""<p>Someone asked to reset your password.</p><p><a href="{H(link)}" id="reset-link">Choose a new password</a></p><p>If it was not you, ignore this message.</p>""");
    }

    private async Task<MimeMessage?> InvitationAsync(Guid? invitationId, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var invitation = invitationId is null ? null : await db.Invitations.FirstOrDefaultAsync(i => i.Id == invitationId, ct);
        if (invitation is null || invitation.AcceptedAt is not null || invitation.ExpiresAt <= now)
        {
            return null;
        }
        var tenant = await db.Tenants.AsNoTracking().Where(t => t.Id == invitation.TenantId).Select(t => t.Name).FirstAsync(ct);
        var (token, hash) = SubscriptionTokens.New();
        invitation.TokenHash = hash;
        var link = urls.Value.Link("/account/accept-invitation?token=" + token);
        return Compose(invitation.Email, $"You are invited to {tenant}",
            $"You are invited to join {tenant} as {invitation.Role}. Open this link to accept (valid until {invitation.ExpiresAt:u}): {link}",
            $"""<p>You are invited to join <strong>{H(tenant)}</strong> as <strong>{H(invitation.Role)}</strong>.</p><p><a href="{H(link)}" id="accept-link">Accept the invitation</a></p><p>The link is valid until {invitation.ExpiresAt:u}.</p>""");
    }

    private MimeMessage Compose(string to, string subject, string text, string html)
    {
        var message = new MimeMessage();
        message.From.Add(new MailboxAddress(smtp.Value.FromName, smtp.Value.FromAddress));
        message.To.Add(MailboxAddress.Parse(to));
        message.Subject = subject;
        message.MessageId = MimeKit.Utils.MimeUtils.GenerateMessageId(MailboxAddress.Parse(smtp.Value.FromAddress).Domain);
        message.Body = new BodyBuilder { TextBody = text, HtmlBody = html }.ToMessageBody();
        return message;
    }

    /// <summary>Identity's tokens are base64 with + and /: base64url keeps them intact in a query string.</summary>
    public static string Encode(string token) => WebEncoders.Base64UrlEncode(Encoding.UTF8.GetBytes(token));

    public static string? Decode(string? code)
    {
        if (string.IsNullOrEmpty(code) || code.Length > 2000)
        {
            return null;
        }
        try
        {
            return Encoding.UTF8.GetString(WebEncoders.Base64UrlDecode(code));
        }
        catch (FormatException)
        {
            return null;
        }
    }

    private static string H(string s) => HtmlEncoder.Default.Encode(s);
}
