using System.ComponentModel.DataAnnotations;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using MailKit.Net.Smtp;
using MailKit.Security;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Newsletter.ServiceDefaults.Mail;
using Newsletter.TestSupport;
using SendEngine.Composition;
using SendEngine.Transports;

namespace SendEngine.Tests;

/// <summary>
/// The SMTP transport against a real server that misbehaves (fault_smtp.py, aiosmtpd): every outcome from the reply or
/// the failure that caused it, the phase timeouts, and no second copy of a message whose DATA was completely written.
/// </summary>
public sealed class SmtpTransportTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(30);

    private static SmtpTransport Transport(FaultSmtpServer server, TimeSpan? command = null, TimeSpan? data = null, string? password = null) =>
        new(Options.Create(new SmtpOptions
        {
            Host = server.Host,
            Port = server.Port,
            FromAddress = "news@example.test",
            CommandTimeout = command ?? Long,
            DataTimeout = data ?? Long,
            Username = password is null ? null : "sender",
            Password = password,
        }), NullLogger<SmtpTransport>.Instance);

    private static OutgoingMessage Message(string to = "reader@example.test") =>
        new MessageComposer(new SmtpOptions { FromAddress = "news@example.test" }, null, "Hello", "<p>Hi {{ email }}</p>", "Hi {{ email }}")
            .Compose(new MergeData(to, "http://mc.test/u?token=t", new Dictionary<string, JsonElement>()));

    /// <summary>As the transport sends a bulk message: the envelope given (a <see cref="WireMessage"/> has no fields MailKit reads it from).</summary>
    private static Task<string> SendThrough(SmtpClient client, OutgoingMessage message, CancellationToken ct, MailKit.ITransferProgress progress) =>
        client.SendAsync(MimeKit.FormatOptions.Default, SmtpTransport.ToMime(message), MimeKit.MailboxAddress.Parse(message.From.Address),
            [MimeKit.MailboxAddress.Parse(message.To)], ct, progress);

    private static void AssertUnknown(DeliveryResult result)
    {
        Assert.Equal(DeliveryOutcome.Unknown, result.Outcome);
        Assert.StartsWith("outcome unknown: ", result.Detail);
        Assert.EndsWith("; not retried to avoid a duplicate", result.Detail);
    }

    [Fact]
    public async Task An_end_of_DATA_reply_later_than_the_data_timeout_is_unknown_and_the_server_has_exactly_one_copy()
    {
        await using var server = await FaultSmtpServer.StartAsync("--data-delay", "8");
        await using var session = Transport(server, command: TimeSpan.FromSeconds(1), data: TimeSpan.FromSeconds(2)).OpenSession();
        var message = Message();

        // No caller token, as the delivery worker sends (the stream's own reusable timer).
        var result = await session.SendAsync(message, CancellationToken.None);

        AssertUnknown(result);
        Assert.Contains("Smtp:DataTimeout", result.Detail);
        Assert.Equal(1, await server.WaitForCopiesAsync(message.MessageId, 1, TimeSpan.FromSeconds(10)));
        // The connection is not trusted after an unknown outcome: the next message goes over a new one.
        await server.SetAsync("data_delay", "0");
        var next = Message("second@example.test");
        Assert.Equal(DeliveryOutcome.Sent, (await session.SendAsync(next, CancellationToken.None)).Outcome);
        Assert.Equal(2, server.Connections);
        await Task.Delay(TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken);
        Assert.Equal(1, server.CopiesOf(message.MessageId));
        Assert.Equal(1, server.CopiesOf(next.MessageId));
    }

    [Fact]
    public async Task A_connection_dropped_after_the_final_dot_is_unknown_and_the_server_has_exactly_one_copy()
    {
        await using var server = await FaultSmtpServer.StartAsync("--drop-after-data");
        await using var session = Transport(server).OpenSession();
        var message = Message();

        var result = await session.SendAsync(message, TestContext.Current.CancellationToken);

        AssertUnknown(result);
        Assert.Equal(1, await server.WaitForCopiesAsync(message.MessageId, 1, TimeSpan.FromSeconds(10)));
        await server.SetAsync("drop_after_data", "0");
        Assert.Equal(DeliveryOutcome.Sent, (await session.SendAsync(Message("second@example.test"), TestContext.Current.CancellationToken)).Outcome);
        Assert.Equal(1, server.CopiesOf(message.MessageId));
    }

    [Fact]
    public async Task A_slow_healthy_relay_within_the_data_timeout_is_sent_though_it_takes_longer_than_the_command_timeout()
    {
        await using var server = await FaultSmtpServer.StartAsync("--data-delay", "3");
        await using var session = Transport(server, command: TimeSpan.FromSeconds(1), data: TimeSpan.FromSeconds(20)).OpenSession();
        var message = Message();

        var result = await session.SendAsync(message, CancellationToken.None);

        Assert.Equal(DeliveryOutcome.Sent, result.Outcome);
        Assert.StartsWith("250 ", result.Detail);
        Assert.Equal(1, server.CopiesOf(message.MessageId));
        // The command timeout is back for the next transaction's commands, which answer at once: same connection.
        await server.SetAsync("data_delay", "0");
        Assert.Equal(DeliveryOutcome.Sent, (await session.SendAsync(Message("second@example.test"), TestContext.Current.CancellationToken)).Outcome);
        Assert.Equal(1, server.Connections);
    }

    [Fact]
    public async Task Connection_refused_is_unavailable_and_the_session_recovers_when_the_server_is_back()
    {
        await using var server = await FaultSmtpServer.StartAsync();
        await using var session = Transport(server).OpenSession();
        Assert.Equal(DeliveryOutcome.Sent, (await session.SendAsync(Message(), TestContext.Current.CancellationToken)).Outcome);
        await server.StopListeningAsync();

        var down = await session.SendAsync(Message("second@example.test"), TestContext.Current.CancellationToken);
        var refused = await session.SendAsync(Message("third@example.test"), TestContext.Current.CancellationToken);

        // The open connection was dropped by the server (before any DATA) and a new one is refused: not attempts.
        Assert.Equal(DeliveryOutcome.Unavailable, down.Outcome);
        Assert.Equal(DeliveryOutcome.Unavailable, refused.Outcome);
        Assert.Contains("connecting", refused.Detail);
        await server.StartListeningAsync();
        var fourth = Message("fourth@example.test");
        Assert.Equal(DeliveryOutcome.Sent, (await session.SendAsync(fourth, TestContext.Current.CancellationToken)).Outcome);
        // The server's report of what it took arrives on its stdout, a moment after its reply.
        Assert.Equal(1, await server.WaitForCopiesAsync(fourth.MessageId, 1, TimeSpan.FromSeconds(10)));
        Assert.Equal(2, server.Accepted.Count);
    }

    [Fact]
    public async Task A_421_is_unavailable()
    {
        await using var server = await FaultSmtpServer.StartAsync("--mail-reply", "421 4.3.2 Service shutting down");
        await using var session = Transport(server).OpenSession();

        var result = await session.SendAsync(Message(), TestContext.Current.CancellationToken);

        Assert.Equal(DeliveryOutcome.Unavailable, result.Outcome);
        Assert.StartsWith("421 ", result.Detail);
        Assert.Empty(server.Accepted);
    }

    [Fact]
    public async Task A_4xx_to_MAIL_FROM_is_unavailable_and_a_5xx_misconfigured()
    {
        await using var server = await FaultSmtpServer.StartAsync("--mail-reply", "451 4.3.0 Local error");
        await using var session = Transport(server).OpenSession();

        var temporary = await session.SendAsync(Message(), TestContext.Current.CancellationToken);
        await server.SetAsync("mail_reply", "553 5.7.1 Sender address rejected: not owned by user");
        var refused = await session.SendAsync(Message(), TestContext.Current.CancellationToken);

        Assert.Equal((DeliveryOutcome.Unavailable, DeliveryOutcome.Misconfigured), (temporary.Outcome, refused.Outcome));
        Assert.StartsWith("553 ", refused.Detail);
        Assert.Empty(server.Accepted);
    }

    [Fact]
    public async Task AUTH_refused_with_535_is_misconfigured_until_the_credential_is_fixed()
    {
        await using var server = await FaultSmtpServer.StartAsync("--password", "the-right-one");
        await using var session = Transport(server, password: "an-old-one").OpenSession();

        var refused = await session.SendAsync(Message(), TestContext.Current.CancellationToken);

        Assert.Equal(DeliveryOutcome.Misconfigured, refused.Outcome);
        Assert.Contains("535", refused.Detail);
        // The operator fixes the credential (here: the server's side of it); the same session then delivers.
        await server.SetAsync("password", "an-old-one");
        var retried = Message();
        Assert.Equal(DeliveryOutcome.Sent, (await session.SendAsync(retried, TestContext.Current.CancellationToken)).Outcome);
        // The server's report of what it took arrives on its stdout, a moment after its reply.
        Assert.Equal(1, await server.WaitForCopiesAsync(retried.MessageId, 1, TimeSpan.FromSeconds(10)));
        Assert.Single(server.Accepted);
    }

    [Fact]
    public async Task RCPT_450_is_deferred_and_550_rejected_on_the_same_connection()
    {
        await using var server = await FaultSmtpServer.StartAsync("--rcpt-reply", "450 4.2.1 Mailbox busy, try later");
        await using var session = Transport(server).OpenSession();

        var deferred = await session.SendAsync(Message(), TestContext.Current.CancellationToken);
        await server.SetAsync("rcpt_reply", "550 5.1.1 <reader@example.test>: Recipient address rejected: User unknown");
        var rejected = await session.SendAsync(Message(), TestContext.Current.CancellationToken);
        await server.SetAsync("rcpt_reply", "-");
        var sent = await session.SendAsync(Message(), TestContext.Current.CancellationToken);

        Assert.Equal((DeliveryOutcome.Deferred, DeliveryOutcome.Rejected, DeliveryOutcome.Sent), (deferred.Outcome, rejected.Outcome, sent.Outcome));
        Assert.StartsWith("450 ", deferred.Detail);
        Assert.StartsWith("550 ", rejected.Detail);
        Assert.Contains("5.1.1", rejected.Detail); // what the runner's hard-bounce rule reads
        // A recipient's refusal is not the connection's: it stays open.
        Assert.Equal(1, server.Connections);
    }

    [Fact]
    public async Task A_4xx_reply_to_the_end_of_DATA_is_deferred_and_a_5xx_rejected()
    {
        await using var server = await FaultSmtpServer.StartAsync("--data-reply", "451 4.7.1 Greylisted, try later");
        await using var session = Transport(server).OpenSession();

        var deferred = await session.SendAsync(Message(), TestContext.Current.CancellationToken);
        await server.SetAsync("data_reply", "554 5.6.0 Message content rejected");
        var rejected = await session.SendAsync(Message(), TestContext.Current.CancellationToken);

        Assert.Equal((DeliveryOutcome.Deferred, DeliveryOutcome.Rejected), (deferred.Outcome, rejected.Outcome));
        Assert.StartsWith("554 ", rejected.Detail);
    }

    [Fact]
    public async Task An_invalid_recipient_address_is_rejected_without_touching_the_server()
    {
        await using var server = await FaultSmtpServer.StartAsync();
        await using var session = Transport(server).OpenSession();

        var result = await session.SendAsync(Message("not an address"), TestContext.Current.CancellationToken);

        Assert.Equal(DeliveryOutcome.Rejected, result.Outcome);
        Assert.StartsWith("invalid message: ", result.Detail);
        Assert.Equal(0, server.Connections);
    }

    /// <summary>MailKit's switch to BDAT for every message (it otherwise uses BDAT only for BINARYMIME content).</summary>
    private sealed class BdatSmtpClient : SmtpClient
    {
        protected override bool PreferSendAsBinaryData => true;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task With_CHUNKING_the_message_counts_as_written_once_the_BDAT_LAST_chunk_went_out(bool dropAfterLastChunk)
    {
        // Send Engine's messages are 7bit, so MailKit sends them with DATA; this shows the detection holds for BDAT too.
        await using var server = await FaultSmtpServer.StartAsync(dropAfterLastChunk ? ["--chunking", "--drop-after-data"] : ["--chunking", "--rcpt-reply", "450 4.2.1 later"]);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(server.Host, server.Port, TestContext.Current.CancellationToken);
        using var wire = new SmtpWireStream(socket, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(10));
        using var client = new BdatSmtpClient();
        await client.ConnectAsync(wire, server.Host, server.Port, SecureSocketOptions.None, TestContext.Current.CancellationToken);
        var message = Message();
        wire.BeginTransaction();

        var failure = await Assert.ThrowsAnyAsync<Exception>(() => SendThrough(client, message, TestContext.Current.CancellationToken, wire));

        if (dropAfterLastChunk)
        {
            Assert.True(wire.PayloadWritten, failure.ToString());
            // The server's output is read asynchronously and can trail the dropped connection; its BDAT line precedes
            // the copy's, so once the copy is counted the line is there.
            Assert.Equal(1, await server.WaitForCopiesAsync(message.MessageId, 1, TimeSpan.FromSeconds(10)));
            Assert.Contains(" LAST", server.Output);
        }
        else
        {
            // Refused at RCPT: no chunk was sent.
            Assert.IsType<SmtpCommandException>(failure);
            Assert.False(wire.PayloadWritten);
            Assert.DoesNotContain("BDAT", server.Output);
        }
    }

    [Fact]
    public void The_timeouts_default_to_RFC_5321s_and_out_of_range_values_are_refused()
    {
        var defaults = new SmtpOptions();
        var bad = new SmtpOptions { CommandTimeout = TimeSpan.FromHours(2), DataTimeout = TimeSpan.Zero };
        var errors = new List<ValidationResult>();

        // The hosts bind SmtpOptions with ValidateDataAnnotations().ValidateOnStart(): these stop them at start.
        Assert.False(Validator.TryValidateObject(bad, new ValidationContext(bad), errors, validateAllProperties: true));

        Assert.Equal((TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(10)), (defaults.CommandTimeout, defaults.DataTimeout));
        Assert.Equal(["CommandTimeout", "DataTimeout"], errors.SelectMany(e => e.MemberNames).Order());
    }

    [Theory]
    [InlineData("--drop-after-data")]
    [InlineData("--data-delay")]
    public async Task Under_STARTTLS_the_end_of_DATA_is_still_detected_below_the_encryption(string fault)
    {
        // A throw-away self-signed certificate for the server; the client below accepts it (the transport would not).
        var dir = Directory.CreateTempSubdirectory("fault-smtp-tls-");
        try
        {
            using var key = RSA.Create(2048);
            var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
            using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
            var certFile = Path.Combine(dir.FullName, "cert.pem");
            var keyFile = Path.Combine(dir.FullName, "key.pem");
            await File.WriteAllTextAsync(certFile, certificate.ExportCertificatePem(), TestContext.Current.CancellationToken);
            await File.WriteAllTextAsync(keyFile, key.ExportPkcs8PrivateKeyPem(), TestContext.Current.CancellationToken);
            string[] faultArgs = fault == "--data-delay" ? ["--data-delay", "6"] : [fault];
            await using var server = await FaultSmtpServer.StartAsync([.. faultArgs, "--tls-cert", certFile, "--tls-key", keyFile]);
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync(server.Host, server.Port, TestContext.Current.CancellationToken);
            using var wire = new SmtpWireStream(socket, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(2));
            using var client = new SmtpClient { ServerCertificateValidationCallback = (_, _, _, _) => true };
            await client.ConnectAsync(wire, server.Host, server.Port, SecureSocketOptions.StartTls, TestContext.Current.CancellationToken);
            Assert.True(client.IsSecure);
            var message = Message();
            wire.BeginTransaction();

            var failure = await Assert.ThrowsAnyAsync<Exception>(() => SendThrough(client, message, CancellationToken.None, wire));

            Assert.True(wire.PayloadWritten, failure.ToString());
            if (fault == "--data-delay")
            {
                // TLS wraps the stream's TimeoutException in an IOException.
                Assert.IsType<TimeoutException>(failure is IOException { InnerException: { } inner } ? inner : failure);
            }
            Assert.Equal(1, await server.WaitForCopiesAsync(message.MessageId, 1, TimeSpan.FromSeconds(10)));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
