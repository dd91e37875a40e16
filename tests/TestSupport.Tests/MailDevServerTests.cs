using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;

namespace Newsletter.TestSupport.Tests;

public sealed class MailDevServerTests(MailDevServer maildev)
{
    [Fact]
    public async Task Sent_mail_can_be_read_back_with_its_raw_headers()
    {
        var ct = TestContext.Current.CancellationToken;
        var subject = $"Welcome {Guid.NewGuid():N}";
        var message = new MimeMessage();
        message.From.Add(new MailboxAddress("Newsletter", "news@example.com"));
        message.To.Add(new MailboxAddress("Reader", "reader@example.com"));
        message.To.Add(MailboxAddress.Parse("second@example.com"));
        message.Subject = subject;
        message.Headers.Add("List-Unsubscribe", "<https://example.com/u/abc>");
        message.Headers.Add("List-Unsubscribe-Post", "List-Unsubscribe=One-Click");
        message.Body = new BodyBuilder { HtmlBody = "<p>Hello <b>reader</b></p>", TextBody = "Hello reader" }.ToMessageBody();

        using (var smtp = new SmtpClient())
        {
            await smtp.ConnectAsync(maildev.SmtpHost, maildev.SmtpPort, SecureSocketOptions.None, ct);
            await smtp.SendAsync(message, ct);
            await smtp.DisconnectAsync(true, ct);
        }

        var mail = await maildev.WaitForMailAsync(m => m.Subject == subject, TimeSpan.FromSeconds(10), ct);
        Assert.Equal("news@example.com", mail.From);
        Assert.Equal(["reader@example.com", "second@example.com"], mail.To);
        Assert.Contains("<b>reader</b>", mail.Html);
        Assert.Equal("Hello reader", mail.Text?.Trim());
        Assert.True(mail.Date > DateTimeOffset.UtcNow.AddMinutes(-5));

        var source = await maildev.GetSourceAsync(mail.Id, ct);
        Assert.Contains("List-Unsubscribe: <https://example.com/u/abc>", source);
        Assert.Contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click", source);
        Assert.Contains($"Message-Id: <{message.MessageId}>", source, StringComparison.OrdinalIgnoreCase);

        Assert.Contains(await maildev.ListAsync(ct), m => m.Id == mail.Id);
    }

    [Fact]
    public async Task WaitForMailAsync_times_out_listing_what_arrived()
    {
        var ct = TestContext.Current.CancellationToken;
        var e = await Assert.ThrowsAsync<TimeoutException>(
            () => maildev.WaitForMailAsync(m => m.Subject == "never sent " + Guid.NewGuid(), TimeSpan.FromMilliseconds(300), ct));
        Assert.Contains("maildev", e.Message);
    }
}
