using MemberCenter.Features.Outbox;
using Microsoft.EntityFrameworkCore;
using Newsletter.TestSupport;

namespace MemberCenter.Tests;

/// <summary>A Member Center whose SMTP server is down: subscribing must still answer, and the mail must wait, not vanish.</summary>
public sealed class ConfirmationOutboxTests(PostgresServer postgres, MailDevServer mail) : IAsyncLifetime
{
    private readonly MemberCenterFixture _down = new(postgres, mail);

    public ValueTask InitializeAsync()
    {
        _down.Settings["Smtp:Port"] = FreePort.Get().ToString(System.Globalization.CultureInfo.InvariantCulture); // nothing listens there
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

        OutboxMessage? row = null;
        for (var i = 0; i < 100 && row?.LastError is null; i++)
        {
            await Task.Delay(100);
            row = await _down.WithDbAsync(db => db.OutboxMessages.AsNoTracking().SingleOrDefaultAsync());
        }
        Assert.NotNull(row?.LastError);
        Assert.Null(row!.CompletedAt);
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
}
