using System.Text;
using MimeKit;
using Newsletter.TestSupport;
using SendEngine.Features.BounceMailboxes;
using SendEngine.Features.EmailEvents;

namespace SendEngine.Tests;

/// <summary>
/// Issue 14, part 2: the bounce and complaint shapes of tests/SendEngine.Tests/Fixtures/bounces (written from RFC 3464
/// and RFC 5965's examples and the public descriptions of Postfix, Exim, Gmail, Microsoft and Yahoo bounces).
/// </summary>
public sealed class BounceParserTests
{
    private const string Verp = "b-r42-abcdefghij@bounces.sender.example";
    private const string Rcpt = "reader@recipient.example";
    private const string OriginalId = "20261201100000.abc@sender.example";

    /// <summary>A fixture with its placeholders filled in.</summary>
    public static string Fixture(string name, string verp, string rcpt, string messageId, string reportId) =>
        File.ReadAllText(Path.Combine(RepoPaths.Root, "tests", "SendEngine.Tests", "Fixtures", "bounces", name))
            .Replace("{{VERP}}", verp, StringComparison.Ordinal).Replace("{{RCPT}}", rcpt, StringComparison.Ordinal)
            .Replace("{{MESSAGE_ID}}", messageId, StringComparison.Ordinal).Replace("{{REPORT_ID}}", reportId, StringComparison.Ordinal)
            .ReplaceLineEndings("\r\n");

    private static BounceReport? Parse(string name, out string? reason)
    {
        var raw = Fixture(name, Verp, Rcpt, OriginalId, "report-" + name + "@mta.example");
        return BounceParser.Parse(MimeMessage.Load(new MemoryStream(Encoding.UTF8.GetBytes(raw))), out reason);
    }

    [Theory]
    [InlineData("postfix-dsn.eml", "rfc3464", "5.1.1")]
    [InlineData("gmail-dsn.eml", "rfc3464", "5.1.1")]
    [InlineData("outlook-ndr.eml", "rfc3464", "5.5.0")]
    [InlineData("exim-dsn.eml", "exim", "5.1.1")]
    [InlineData("yahoo-dsn.eml", "qmail", null)]
    public void Hard_bounces_of_each_shape_name_the_recipient_the_verp_address_and_the_original(string name, string shape, string? status)
    {
        var report = Parse(name, out var reason);
        Assert.True(report is not null, reason);
        Assert.Equal(BounceParser.DsnFormat, report.Format);
        Assert.Equal(shape, report.Shape);
        var entry = Assert.Single(report.Recipients);
        Assert.Equal(Rcpt, entry.Email);
        Assert.Equal(EmailEventTypes.HardBounce, entry.EventType);
        Assert.Equal(status, entry.Status);
        Assert.Contains(Verp, report.EnvelopeAddresses, StringComparer.OrdinalIgnoreCase);
        Assert.Equal(OriginalId, report.OriginalMessageId);
        Assert.Equal("report-" + name + "@mta.example", report.ReportMessageId);
        if (shape == "qmail")
        {
            Assert.Contains("554", entry.Diagnostic, StringComparison.Ordinal);
        }
        else
        {
            Assert.Contains("5", entry.Diagnostic ?? "", StringComparison.Ordinal);
        }
    }

    [Fact]
    public void An_arf_abuse_report_is_a_complaint_with_the_original_mail_from()
    {
        var report = Parse("arf-complaint.eml", out var reason);
        Assert.True(report is not null, reason);
        Assert.Equal(BounceParser.ArfFormat, report.Format);
        Assert.Equal("abuse", report.FeedbackType);
        var entry = Assert.Single(report.Recipients);
        Assert.Equal(EmailEventTypes.SpamReport, entry.EventType);
        Assert.Equal(Rcpt, entry.Email);
        Assert.Contains(Verp, report.EnvelopeAddresses, StringComparer.OrdinalIgnoreCase);
        Assert.Equal(OriginalId, report.OriginalMessageId);
        Assert.Equal(new DateTimeOffset(2026, 12, 1, 10, 0, 0, TimeSpan.Zero), report.OccurredAt);
    }

    [Fact]
    public void A_delayed_dsn_raises_no_event_and_junk_is_no_report()
    {
        var delayed = Parse("delayed-dsn.eml", out _);
        Assert.NotNull(delayed);
        Assert.Equal(BounceParser.Delayed, Assert.Single(delayed.Recipients).EventType);

        Assert.Null(Parse("junk.eml", out var reason));
        Assert.Contains("neither", reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("5.1.1", EmailEventTypes.HardBounce)]
    [InlineData("4.2.2", EmailEventTypes.SoftBounce)]
    [InlineData("smtp; 452 4.2.2 mailbox full", EmailEventTypes.SoftBounce)]
    [InlineData("smtp; 550 no such user", EmailEventTypes.HardBounce)]
    [InlineData("2.0.0", null)]
    [InlineData(null, null)]
    public void Status_classes_map_to_hard_and_soft(string? code, string? expected) => Assert.Equal(expected, BounceParser.ClassOf(code));

    [Fact]
    public void A_soft_failed_dsn_is_a_soft_bounce()
    {
        var raw = Fixture("postfix-dsn.eml", Verp, Rcpt, OriginalId, "soft@mta.example")
            .Replace("Status: 5.1.1", "Status: 4.2.2", StringComparison.Ordinal)
            .Replace("Diagnostic-Code: smtp; 550 5.1.1", "Diagnostic-Code: smtp; 452 4.2.2", StringComparison.Ordinal);
        var report = BounceParser.Parse(MimeMessage.Load(new MemoryStream(Encoding.UTF8.GetBytes(raw))), out _);
        Assert.Equal(EmailEventTypes.SoftBounce, Assert.Single(report!.Recipients).EventType);
    }
}
