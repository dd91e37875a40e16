using MemberCenter.Features.Outbox;
using Microsoft.EntityFrameworkCore;
using Newsletter.TestSupport;

namespace MemberCenter.Tests;

/// <summary>A Member Center whose SMTP server is down: subscribing must still answer, and the mail must wait, not vanish.</summary>
[LongRunning(162)]
public sealed class ConfirmationOutboxTests(PostgresServer postgres, MailDevServer mail) : IAsyncLifetime
{
    private readonly MemberCenterFixture _down = new(postgres, mail);

    public ValueTask InitializeAsync()
    {
        _down.Settings["Smtp:Port"] = FreePort.Get().ToString(System.Globalization.CultureInfo.InvariantCulture); // nothing listens there
        // One attempt would give a message up at once if an outage counted.
        _down.Settings["Outbox:MaxAttempts"] = "1";
        _down.Settings["Outbox:PollInterval"] = "00:00:00.200";
        return _down.InitializeAsync();
    }

    public ValueTask DisposeAsync() => ((IAsyncDisposable)_down).DisposeAsync();

    [Fact]
    public async Task Mail_that_cannot_be_sent_stays_in_the_outbox_and_leaves_when_SMTP_is_back()
    {
        var tenant = await _down.CreateTenantAsync();
        var email = $"patient-{Guid.NewGuid():N}@example.com";
        var sub = await tenant.SubscribeAsync(email);
        Assert.Equal("pending", sub.Status);

        var row = await WaitForRowAsync(_down, r => r.LastError is not null);
        Assert.Null(row.CompletedAt);
        Assert.Null(row.SentAt);

        // SMTP is back: Member Center restarts with a working server on the same database. The row is made due now
        // rather than after its backoff, and only once the broken instance is gone (it would keep claiming it).
        await ((IAsyncDisposable)_down).DisposeAsync();
        await using (var db = new Npgsql.NpgsqlConnection(_down.ConnectionString))
        {
            await db.OpenAsync();
            await using var due = new Npgsql.NpgsqlCommand("UPDATE outbox_messages SET next_attempt_at = now() - interval '1 second'", db);
            Assert.Equal(1, await due.ExecuteNonQueryAsync());
        }
        await using var up = new MemberCenterFixture(postgres, mail);
        up.Settings["ConnectionStrings:MemberCenter"] = _down.ConnectionString;
        await up.InitializeAsync();
        var arrived = await mail.WaitForMailAsync(m => m.To.Contains(email), TimeSpan.FromSeconds(30));
        Assert.Contains("/newsletter/confirm?token=", arrived.Text);
    }

    [Fact]
    public async Task An_outage_uses_up_no_attempts_and_is_retried_until_the_confirm_token_lifetime()
    {
        var tenant = await _down.CreateTenantAsync();
        var email = $"outage-{Guid.NewGuid():N}@example.com";
        await tenant.SubscribeAsync(email);

        // Three failed tries, each made due at once: with MaxAttempts 1 the first would have been the last.
        // Made due only between tries: a row made due while claimed would be claimed twice (as after a lost lease).
        var row = await WaitForRowAsync(_down, r => r.LastError is not null);
        for (var attempt = 0; attempt < 3; attempt++)
        {
            await ExecuteAsync("UPDATE outbox_messages SET next_attempt_at = now() - interval '1 second', last_error = NULL");
            row = await WaitForRowAsync(_down, r => r.LastError is not null && r.NextAttemptAt > DateTimeOffset.UtcNow);
            Assert.True(row.CompletedAt is null, $"given up on try {attempt + 1}: {row.LastError}");
            Assert.Equal(0, row.Attempts);
        }

        // A week after the subscribe the pending subscription's confirm token has expired: the mail is given up.
        await ExecuteAsync("UPDATE outbox_messages SET created_at = now() - interval '7 days 1 minute', next_attempt_at = now() - interval '1 second', last_error = NULL");
        row = await WaitForRowAsync(_down, r => r.CompletedAt is not null);
        Assert.Null(row.SentAt);
        Assert.NotNull(row.LastError);
    }

    [Fact]
    public async Task A_recipient_the_SMTP_server_refuses_with_5xx_uses_up_its_attempts()
    {
        await using var rejecting = await SmtpSinkServer.StartRejectingUnknownUsersAsync();
        await using var mc = new MemberCenterFixture(postgres, mail);
        mc.Settings["Smtp:Host"] = rejecting.Host;
        mc.Settings["Smtp:Port"] = rejecting.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        mc.Settings["Outbox:MaxAttempts"] = "1";
        await mc.InitializeAsync();
        var tenant = await mc.CreateTenantAsync();
        await tenant.SubscribeAsync($"unknown-{Guid.NewGuid():N}@example.com");

        var row = await WaitForRowAsync(mc, r => r.CompletedAt is not null);
        Assert.Null(row.SentAt);
        Assert.Contains("User unknown", row.LastError);
    }

    private async Task ExecuteAsync(string sql)
    {
        await using var db = new Npgsql.NpgsqlConnection(_down.ConnectionString);
        await db.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand(sql, db);
        Assert.Equal(1, await command.ExecuteNonQueryAsync());
    }

    /// <summary>The database's one outbox row once <paramref name="done"/> holds for it (30 s at most).</summary>
    private static async Task<OutboxMessage> WaitForRowAsync(MemberCenterFixture mc, Func<OutboxMessage, bool> done)
    {
        OutboxMessage? row = null;
        for (var i = 0; i < 300 && (row is null || !done(row)); i++)
        {
            await Task.Delay(100);
            row = await mc.WithDbAsync(db => db.OutboxMessages.AsNoTracking().SingleOrDefaultAsync());
        }
        Assert.True(row is not null && done(row), $"outbox row: attempts {row?.Attempts}, completed {row?.CompletedAt}, error {row?.LastError}");
        return row!;
    }
}
