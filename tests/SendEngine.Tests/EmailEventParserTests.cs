using System.Text;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.FileProviders;
using SendEngine.Features.EmailEvents;

namespace SendEngine.Tests;

public sealed class EmailEventParserTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData("delivery", null, "delivered")]
    [InlineData("reject", null, "rejected")]
    [InlineData("bounce", "Permanent", "hard_bounce")]
    [InlineData("bounce", "Transient", "soft_bounce")]
    [InlineData("open", null, "open")]
    [InlineData("click", null, "click")]
    [InlineData("unsubscribe", null, "unsubscribe")]
    [InlineData("somethingNew", null, "unknown")]
    public void Spec_format_maps_to_the_internal_type(string eventType, string? bounceType, string expected)
    {
        var json = $$"""{"eventType":"{{eventType}}","messageId":"m-1","email":"User@Example.com","timestamp":"2024-01-01T12:00:00.000Z"{{(bounceType is null ? "" : $",\"bounceType\":\"{bounceType}\",\"bounceSubType\":\"General\"")}},"link":"https://x.example/a","userAgent":"UA","ipAddress":"192.0.2.1"}""";
        var e = Assert.Single(EmailEventParser.Parse(Encoding.UTF8.GetBytes(json), Now));
        Assert.Equal(expected, e.EventType);
        Assert.Equal("spec", e.Format);
        Assert.Equal("m-1", e.MessageId);
        Assert.Equal("user@example.com", e.Email);
        Assert.Equal(new DateTimeOffset(2024, 1, 1, 12, 0, 0, TimeSpan.Zero), e.OccurredAt);
        Assert.Equal("https://x.example/a", e.Link);
        Assert.Equal("UA", e.UserAgent);
        Assert.Equal("192.0.2.1", e.IpAddress);
        Assert.Equal(json, e.Payload);
    }

    [Theory]
    [InlineData("processed", null, "processed")]
    [InlineData("deferred", null, "deferred")]
    [InlineData("delivered", null, "delivered")]
    [InlineData("dropped", null, "rejected")]
    [InlineData("bounce", "hard_bounce", "hard_bounce")]
    [InlineData("bounce", "soft_bounce", "soft_bounce")]
    [InlineData("open", null, "open")]
    [InlineData("click", null, "click")]
    [InlineData("spamreport", null, "spamreport")]
    [InlineData("unsubscribe", null, "unsubscribe")]
    [InlineData("brandnew", null, "unknown")]
    public void Tencent_format_maps_to_the_internal_type(string eventType, string? bounceType, string expected)
    {
        var json = $$"""{"event":"{{eventType}}","email":"example@example.com","bulkId":"qcloudses-30-251200670-date-20220601142439-8jolHvR2XcXC1","timestamp":1654064683,"reason":"551 5.1.1 recipient is not exist"{{(bounceType is null ? "" : $",\"bounceType\":\"{bounceType}\"")}},"username":"251200670","from":"test@fromexample.com","fromDomain":"fromexample.com","templateId":123456,"subject":"example subject","messageId":"<ea2783c1@fromexample.com>","sentTimestamp":1761555487,"useragent":"UA"}""";
        var e = Assert.Single(EmailEventParser.Parse(Encoding.UTF8.GetBytes(json), Now));
        Assert.Equal(expected, e.EventType);
        Assert.Equal("tencent", e.Format);
        Assert.Equal("qcloudses-30-251200670-date-20220601142439-8jolHvR2XcXC1", e.MessageId);
        Assert.Equal("<ea2783c1@fromexample.com>", e.SmtpMessageId);
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1654064683), e.OccurredAt);
        Assert.Equal("551 5.1.1 recipient is not exist", e.Reason);
        Assert.Equal("UA", e.UserAgent);
    }

    [Fact]
    public void Idempotency_key_covers_message_type_timestamp_and_link()
    {
        var a = EmailEventParser.Key("m", "click", DateTimeOffset.FromUnixTimeSeconds(1), "https://a", "x@y.z");
        Assert.Equal(a, EmailEventParser.Key("m", "CLICK", DateTimeOffset.FromUnixTimeSeconds(1), "https://a", "X@y.z"));
        Assert.NotEqual(a, EmailEventParser.Key("m", "click", DateTimeOffset.FromUnixTimeSeconds(1), "https://b", "x@y.z"));
        Assert.NotEqual(a, EmailEventParser.Key("m", "click", DateTimeOffset.FromUnixTimeSeconds(2), "https://a", "x@y.z"));
        Assert.NotEqual(a, EmailEventParser.Key("m2", "click", DateTimeOffset.FromUnixTimeSeconds(1), "https://a", "x@y.z"));
        Assert.NotEqual(a, EmailEventParser.Key("m", "open", DateTimeOffset.FromUnixTimeSeconds(1), "https://a", "x@y.z"));
    }

    [Theory]
    [InlineData("{\"eventType\":\"delivery\"")]
    [InlineData("\"just a string\"")]
    [InlineData("{\"eventType\":\"delivery\",\"email\":\"a@b.c\",\"timestamp\":\"2024-01-01T00:00:00Z\"}")]
    [InlineData("{\"eventType\":\"delivery\",\"messageId\":\"m\",\"email\":\"a@b.c\",\"timestamp\":\"yesterday\"}")]
    [InlineData("{\"event\":\"delivered\",\"email\":\"a@b.c\",\"timestamp\":1654064683}")]
    [InlineData("{\"event\":\"delivered\",\"email\":\"not-an-address\",\"bulkId\":\"b\",\"timestamp\":1654064683}")]
    [InlineData("{\"event\":\"delivered\",\"email\":\"a@b.c\",\"bulkId\":\"b\",\"timestamp\":\"2024-01-01\"}")]
    [InlineData("{\"email\":\"a@b.c\",\"bulkId\":\"b\",\"timestamp\":1}")]
    [InlineData("[]")]
    public void Malformed_or_incomplete_events_are_refused(string json) =>
        Assert.Throws<EmailEventParseException>(() => EmailEventParser.Parse(Encoding.UTF8.GetBytes(json), Now));

    // 0001-01-02 made the processor's soft-bounce window (occurred_at - 7 days) throw; far-future dates are as bogus.
    [Theory]
    [InlineData("{\"eventType\":\"bounce\",\"messageId\":\"m\",\"email\":\"a@b.c\",\"timestamp\":\"0001-01-02T00:00:00Z\",\"bounceType\":\"Transient\"}", "timestamp")]
    [InlineData("{\"eventType\":\"delivery\",\"messageId\":\"m\",\"email\":\"a@b.c\",\"timestamp\":\"1999-12-31T23:59:59Z\"}", "timestamp")]
    [InlineData("{\"eventType\":\"delivery\",\"messageId\":\"m\",\"email\":\"a@b.c\",\"timestamp\":\"2026-12-02T12:00:01Z\"}", "timestamp")]
    [InlineData("[{\"event\":\"delivered\",\"email\":\"a@b.c\",\"bulkId\":\"b\",\"timestamp\":1654064683},{\"event\":\"bounce\",\"email\":\"a@b.c\",\"bulkId\":\"b\",\"timestamp\":1}]", "[1].timestamp")]
    [InlineData("{\"event\":\"delivered\",\"email\":\"a@b.c\",\"bulkId\":\"b\",\"timestamp\":946684799}", "timestamp")]
    [InlineData("{\"event\":\"delivered\",\"email\":\"a@b.c\",\"bulkId\":\"b\",\"timestamp\":\"1796212801\"}", "timestamp")]
    public void Event_timestamps_outside_2000_to_a_day_ahead_are_refused_naming_the_field(string json, string field)
    {
        var ex = Assert.Throws<EmailEventParseException>(() => EmailEventParser.Parse(Encoding.UTF8.GetBytes(json), Now));
        Assert.Equal([field], ex.Errors.Keys);
    }

    [Fact]
    public void Event_timestamps_at_the_edges_of_the_range_are_accepted()
    {
        var json = "[{\"eventType\":\"delivery\",\"messageId\":\"m\",\"email\":\"a@b.c\",\"timestamp\":\"2000-01-01T00:00:00Z\"},"
            + "{\"event\":\"delivered\",\"email\":\"a@b.c\",\"bulkId\":\"b\",\"timestamp\":1796212800}]";
        var events = EmailEventParser.Parse(Encoding.UTF8.GetBytes(json), Now);
        Assert.Equal([EmailEventParser.MinTimestamp, Now.AddDays(1)], events.Select(e => e.OccurredAt));
    }

    [Fact]
    public void Without_verification_the_webhook_is_refused_unless_allowed_for_development()
    {
        var production = new WebhookOptionsValidator(new Env(Environments.Production));
        Assert.True(production.Validate(null, new WebhookOptions { Verification = WebhookVerification.None }).Failed);
        Assert.True(production.Validate(null, new WebhookOptions { Verification = WebhookVerification.None, AllowUnauthenticated = true }).Failed);
        Assert.True(production.Validate(null, new WebhookOptions { Verification = WebhookVerification.Signature }).Failed);
        Assert.True(production.Validate(null, new WebhookOptions { Verification = WebhookVerification.Token, SecretToken = "short" }).Failed);
        Assert.True(production.Validate(null, new WebhookOptions { Verification = WebhookVerification.Signature, SigningKey = "0123456789abcdef0123" }).Succeeded);
        Assert.True(production.Validate(null, new WebhookOptions { Verification = WebhookVerification.Token, SecretToken = "0123456789abcdef0123" }).Succeeded);
        // Whatever the environment is called (docker-compose runs as Development), None needs the explicit switch.
        foreach (var name in new[] { Environments.Development, Environments.Staging, "Docker" })
        {
            var validator = new WebhookOptionsValidator(new Env(name));
            Assert.True(validator.Validate(null, new WebhookOptions()).Failed);
            Assert.True(validator.Validate(null, new WebhookOptions { AllowUnauthenticated = true }).Succeeded);
        }
    }

    private sealed class Env(string name) : IHostEnvironment
    {
        public string EnvironmentName { get; set; } = name;
        public string ApplicationName { get; set; } = "test";
        public string ContentRootPath { get; set; } = "/";
        public IFileProvider ContentRootFileProvider { get; set; } = new NullFileProvider();
    }
}
