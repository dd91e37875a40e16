using System.Text.Json;
using MemberCenter.Data;
using MemberCenter.Features.Outbox;
using MemberCenter.Features.Privacy;
using Newsletter.ServiceDefaults.Privacy;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults.Background;
using Npgsql;
using NpgsqlTypes;

namespace MemberCenter.Features.Subscriptions;

/// <summary>Where a consent change came from, for the audit.</summary>
/// <param name="Language">
/// The reader language the request's Accept-Language asks for (null: none), for the confirmation mail: set only where
/// the request speaks for the reader (the subscribe API; an import's browser is the tenant's staff, not the readers).
/// </param>
public sealed record RequestOrigin(string Source, string? IpAddress, string? UserAgent, string? Language = null)
{
    public static RequestOrigin From(HttpContext http, string source) => new(
        source,
        http.Connection.RemoteIpAddress?.ToString(),
        http.Request.Headers.UserAgent.ToString() is { Length: > 0 } ua ? ua[..Math.Min(ua.Length, 512)] : null);
}

public enum TokenOutcome { Done, AlreadyDone, Expired, Invalid }

/// <summary>Lang: the subscriber's <c>lang</c> preference, for the language of the page that answers.</summary>
public sealed record TokenResult(TokenOutcome Outcome, Guid? ListId = null, string? ListName = null, string? Email = null, DateTimeOffset? At = null,
    string? Lang = null);

/// <summary>A subscription seen through one of its tokens, for the end-user pages.</summary>
public sealed record SubscriptionView(Guid SubscriptionId, Guid ListId, string ListName, string Email, SubscriptionStatus Status, Dictionary<string, JsonElement> Preferences);

/// <summary>One address to subscribe: preferences as a JSON object (null: keep/none), and the consent record's details.</summary>
public sealed record SubscribeRow(EmailAddress Email, string? PreferencesJson, string? ConsentDetails);

public enum SubscribeOutcome { Created, Updated, AlreadyConfirmed }

/// <summary>What a subscribe did; the confirm token only for a pending subscription.</summary>
public sealed record SubscribeResult(SubscriptionStatus Status, SubscribeOutcome Outcome, bool Mailed, bool LiftedErasure, string? ConfirmToken,
    DateTimeOffset? ConfirmTokenExpiresAt);

public sealed class SubscriptionService(
    MemberCenterDbContext db,
    NpgsqlDataSource dataSource,
    IOptions<NewsletterOptions> options,
    WakeSignal<OutboxDispatcher> outboxSignal,
    LinkKeyRing linkKeys,
    AddressHasher hasher,
    WakeSignal<SendEngineRequestDispatcher> sendEngineRequests,
    TimeProvider clock)
{
    /// <summary>
    /// The hottest write of the platform, as one statement and one round trip: check the list is the tenant's, upsert
    /// subscriber and subscription, add the consent record and, unless the address is already confirmed, the confirm
    /// token handed to the tenant and, within the per-address limits, the outbox row of the mail. ON CONFLICT ... DO
    /// UPDATE locks the subscription row and evaluates its SET on the latest committed version, so concurrent
    /// subscribes of one address serialise and the mail counters on the row are exact. A confirmed reader is left as is
    /// (status, preferences) and gets no new mail; the request is still in the consent trail (details
    /// already_confirmed), as every subscribe is, and so is a mail held back by the limits. With $23 (confirmed: the
    /// tenant attests the consent, its note in the consent details) the subscription is confirmed at once and no token
    /// or mail is made. inserted/touched tell a new subscription, a changed one and an untouched confirmed one apart.
    /// </summary>
    private const string SubscribeSql = """
        WITH list AS (
            SELECT id FROM mailing_lists WHERE id = $1 AND tenant_id = $2
        ), subscriber AS (
            INSERT INTO subscribers (id, tenant_id, email, email_key, created_at)
            SELECT $3, $2, $4, $5, $6 FROM list
            ON CONFLICT (tenant_id, email_key) DO UPDATE SET email_key = EXCLUDED.email_key
            RETURNING id
        ), subscription AS (
            INSERT INTO subscriptions AS s (id, list_id, subscriber_id, status, preferences, created_at, updated_at, confirmed_at,
                confirm_mail_last_at, confirm_mail_window_start, confirm_mails_in_window)
            SELECT $7, $1, subscriber.id, CASE WHEN $23 THEN 1 ELSE 0 END, $8::jsonb, $6, $6, CASE WHEN $23 THEN $6 END,
                CASE WHEN $23 THEN NULL ELSE $6 END, CASE WHEN $23 THEN NULL ELSE $6 END, CASE WHEN $23 THEN 0 ELSE 1 END FROM subscriber
            ON CONFLICT (list_id, subscriber_id) DO UPDATE SET
                status = CASE WHEN s.status = 1 OR $23 THEN 1 ELSE 0 END,
                preferences = CASE WHEN s.status <> 1 AND $9 THEN EXCLUDED.preferences ELSE s.preferences END,
                updated_at = CASE WHEN s.status = 1 THEN s.updated_at ELSE EXCLUDED.updated_at END,
                confirmed_at = CASE WHEN s.status <> 1 AND $23 THEN $6 ELSE s.confirmed_at END,
                confirm_mail_last_at = CASE WHEN s.status <> 1 AND NOT $23
                        AND (s.confirm_mail_last_at IS NULL OR s.confirm_mail_last_at <= $6 - $18::interval)
                        AND (s.confirm_mail_window_start IS NULL OR s.confirm_mail_window_start <= $6 - interval '1 day' OR s.confirm_mails_in_window < $19)
                    THEN $6 ELSE s.confirm_mail_last_at END,
                confirm_mail_window_start = CASE WHEN s.status <> 1 AND NOT $23
                        AND (s.confirm_mail_last_at IS NULL OR s.confirm_mail_last_at <= $6 - $18::interval)
                        AND (s.confirm_mail_window_start IS NULL OR s.confirm_mail_window_start <= $6 - interval '1 day')
                    THEN $6 ELSE s.confirm_mail_window_start END,
                confirm_mails_in_window = CASE WHEN s.status <> 1 AND NOT $23
                        AND (s.confirm_mail_last_at IS NULL OR s.confirm_mail_last_at <= $6 - $18::interval)
                    THEN CASE WHEN s.confirm_mail_window_start IS NULL OR s.confirm_mail_window_start <= $6 - interval '1 day' THEN 1
                              WHEN s.confirm_mails_in_window < $19 THEN s.confirm_mails_in_window + 1
                              ELSE s.confirm_mails_in_window END
                    ELSE s.confirm_mails_in_window END
            RETURNING s.id, s.subscriber_id, s.status, COALESCE(s.confirm_mail_last_at = $6, false) AS mail, s.confirm_mail_last_at,
                s.confirm_mails_in_window, s.xmax = 0 AS inserted, s.updated_at = $6 AS touched
        ), pending AS (
            SELECT id, subscriber_id, mail FROM subscription WHERE status = 0
        ), token AS (
            INSERT INTO subscription_tokens (id, subscription_id, purpose, channel, hash, created_at, expires_at)
            SELECT $10, id, 0, 1, $11, $6, $12 FROM pending
        ), outbox AS (
            INSERT INTO outbox_messages (subscription_id, created_at, next_attempt_at, attempts, language)
            SELECT id, $6, $6, 0, $25 FROM pending WHERE mail
        ), consent AS (
            INSERT INTO consent_records (tenant_id, list_id, subscriber_id, action, source, ip_address, user_agent, occurred_at, details)
            SELECT $2, $1, subscriber_id, $13, $14, $15, $16, $6,
                CASE WHEN status = 1 AND NOT touched
                    THEN '{"already_confirmed":true}'::jsonb || CASE WHEN $24 THEN $17::jsonb ELSE '{}'::jsonb END
                    ELSE $17::jsonb END
            FROM subscription
            UNION ALL
            SELECT $2, $1, subscriber_id, $20, $14, $15, $16, $6,
                jsonb_build_object('last_mail_at', confirm_mail_last_at, 'mails_in_window', confirm_mails_in_window)
            FROM subscription WHERE status = 0 AND NOT mail
        ), erased AS (
            DELETE FROM erased_addresses WHERE tenant_id = $2 AND address_hash = $21 AND EXISTS (SELECT 1 FROM list)
            RETURNING tenant_id
        ), lift AS (
            INSERT INTO send_engine_requests (tenant_id, kind, email, address_hash, created_at, attempts, next_attempt_at)
            SELECT tenant_id, $22, $5, $21, $6, 0, $6 FROM erased
        )
        SELECT status, mail, EXISTS (SELECT 1 FROM erased), inserted, touched FROM subscription
        """;

    public async Task<SubscribeResponse?> SubscribeAsync(Guid tenantId, Guid listId, EmailAddress email, Dictionary<string, JsonElement>? preferences, RequestOrigin origin, CancellationToken ct)
    {
        var result = await SubscribeAsync(tenantId, listId, new SubscribeRow(email, preferences is null ? null : JsonSerializer.Serialize(preferences), null),
            confirmed: false, origin, ct);
        if (result is null)
        {
            return null;
        }
        return result.Status == SubscriptionStatus.Confirmed
            ? new SubscribeResponse(listId.ToString(), email.Value, SubscriptionStatuses.Confirmed, null, null)
            : new SubscribeResponse(listId.ToString(), email.Value, SubscriptionStatuses.Pending, result.ConfirmToken, result.ConfirmTokenExpiresAt);
    }

    /// <summary>
    /// One subscribe (<see cref="SubscribeSql"/>); null when the list is not the tenant's. Confirmed: the tenant attests
    /// consent (its note is in <see cref="SubscribeRow.ConsentDetails"/>), no mail is sent.
    /// </summary>
    public async Task<SubscribeResult?> SubscribeAsync(Guid tenantId, Guid listId, SubscribeRow row, bool confirmed, RequestOrigin origin, CancellationToken ct)
    {
        await using var command = dataSource.CreateCommand(SubscribeSql);
        var (token, expiresAt) = AddSubscribeParameters(command.Parameters, tenantId, listId, row, confirmed, origin, clock.GetUtcNow());
        SubscribeResult result;
        await using (var reader = await command.ExecuteReaderAsync(ct))
        {
            if (!await reader.ReadAsync(ct))
            {
                return null;
            }
            result = ReadSubscribeResult(reader, token, expiresAt);
        }
        NotifyAfterCommit([result]);
        return result;
    }

    /// <summary>
    /// Many subscribes in one round trip, inside the caller's transaction (the CSV import); the caller commits and then
    /// calls <see cref="NotifyAfterCommit"/>. Null entries: the list is not the tenant's (deleted meanwhile).
    /// </summary>
    public async Task<IReadOnlyList<SubscribeResult?>> SubscribeBatchAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId,
        Guid listId, IReadOnlyList<SubscribeRow> rows, bool confirmed, RequestOrigin origin, CancellationToken ct)
    {
        if (rows.Count == 0)
        {
            return [];
        }
        var now = clock.GetUtcNow();
        await using var batch = new NpgsqlBatch(connection, transaction);
        var tokens = new List<(string Token, DateTimeOffset ExpiresAt)>(rows.Count);
        foreach (var row in rows)
        {
            var command = new NpgsqlBatchCommand(SubscribeSql);
            tokens.Add(AddSubscribeParameters(command.Parameters, tenantId, listId, row, confirmed, origin, now));
            batch.BatchCommands.Add(command);
        }
        var results = new List<SubscribeResult?>(rows.Count);
        await using var reader = await batch.ExecuteReaderAsync(ct);
        for (var i = 0; i < rows.Count; i++)
        {
            results.Add(await reader.ReadAsync(ct) ? ReadSubscribeResult(reader, tokens[i].Token, tokens[i].ExpiresAt) : null);
            if (i < rows.Count - 1)
            {
                await reader.NextResultAsync(ct);
            }
        }
        return results;
    }

    /// <summary>Wakes the outbox (confirmation mail queued) and the Send Engine queue (an erasure lifted) once committed.</summary>
    public void NotifyAfterCommit(IEnumerable<SubscribeResult?> results)
    {
        var mailed = false;
        var lifted = false;
        foreach (var r in results)
        {
            mailed |= r is { Mailed: true };
            lifted |= r is { LiftedErasure: true };
        }
        if (mailed)
        {
            outboxSignal.Notify();
        }
        if (lifted)
        {
            sendEngineRequests.Notify();
        }
    }

    private (string Token, DateTimeOffset ExpiresAt) AddSubscribeParameters(NpgsqlParameterCollection p, Guid tenantId, Guid listId, SubscribeRow row,
        bool confirmed, RequestOrigin origin, DateTimeOffset now)
    {
        var (token, hash) = SubscriptionTokens.New();
        var expiresAt = now + options.Value.ConfirmTokenLifetime;
        // Details of the consent record: the tenant's attestation when given, else the preferences asked for (as before).
        var details = row.ConsentDetails ?? row.PreferencesJson;
        p.Add(new NpgsqlParameter { Value = listId });
        p.Add(new NpgsqlParameter { Value = tenantId });
        p.Add(new NpgsqlParameter { Value = Guid.CreateVersion7() });
        p.Add(new NpgsqlParameter { Value = row.Email.Value });
        p.Add(new NpgsqlParameter { Value = row.Email.Key });
        p.Add(new NpgsqlParameter { Value = now });
        p.Add(new NpgsqlParameter { Value = Guid.CreateVersion7() });
        p.Add(new NpgsqlParameter { Value = row.PreferencesJson ?? "{}" });
        p.Add(new NpgsqlParameter { Value = row.PreferencesJson is not null });
        p.Add(new NpgsqlParameter { Value = Guid.CreateVersion7() });
        p.Add(new NpgsqlParameter { Value = hash });
        p.Add(new NpgsqlParameter { Value = expiresAt });
        p.Add(new NpgsqlParameter { Value = ConsentActions.Subscribe });
        p.Add(new NpgsqlParameter { Value = origin.Source });
        p.Add(new NpgsqlParameter { Value = (object?)origin.IpAddress ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        p.Add(new NpgsqlParameter { Value = (object?)origin.UserAgent ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        p.Add(new NpgsqlParameter { Value = (object?)details ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        p.Add(new NpgsqlParameter { Value = options.Value.ConfirmationMailInterval, NpgsqlDbType = NpgsqlDbType.Interval });
        p.Add(new NpgsqlParameter { Value = options.Value.ConfirmationMailsPerDay });
        p.Add(new NpgsqlParameter { Value = ConsentActions.ConfirmationMailSuppressed });
        // An erased address that subscribes anew gives new consent: the hashed suppression goes, in both services.
        p.Add(new NpgsqlParameter { Value = hasher.Hash(row.Email.Key) });
        p.Add(new NpgsqlParameter { Value = SendEngineRequestKinds.LiftErasure });
        p.Add(new NpgsqlParameter { Value = confirmed });
        // The tenant's own details (its consent note) stay in the record even when the address was already confirmed.
        p.Add(new NpgsqlParameter { Value = row.ConsentDetails is not null });
        p.Add(new NpgsqlParameter { Value = (object?)origin.Language ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        return (token, expiresAt);
    }

    private static SubscribeResult ReadSubscribeResult(NpgsqlDataReader reader, string token, DateTimeOffset expiresAt)
    {
        var status = (SubscriptionStatus)reader.GetInt32(0);
        var inserted = reader.GetBoolean(3);
        var touched = reader.GetBoolean(4);
        var outcome = inserted ? SubscribeOutcome.Created : touched ? SubscribeOutcome.Updated : SubscribeOutcome.AlreadyConfirmed;
        return new SubscribeResult(status, outcome, reader.GetBoolean(1), reader.GetBoolean(2),
            status == SubscriptionStatus.Pending ? token : null, status == SubscriptionStatus.Pending ? expiresAt : null);
    }

    public async Task<TokenResult> ConfirmAsync(string token, RequestOrigin origin, CancellationToken ct)
    {
        if (!SubscriptionTokens.IsWellFormed(token))
        {
            return new TokenResult(TokenOutcome.Invalid);
        }
        var hash = SubscriptionTokens.Hash(token);
        var row = await db.SubscriptionTokens.AsNoTracking().FirstOrDefaultAsync(t => t.Hash == hash && t.Purpose == TokenPurpose.Confirm, ct);
        if (row is null)
        {
            return new TokenResult(TokenOutcome.Invalid);
        }

        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var subscription = await LockAsync(row.SubscriptionId, ct);
        var (list, subscriber) = await ContextOfAsync(subscription, ct);
        // Re-read under the subscription lock: a concurrent click may have consumed it.
        var consumed = await db.SubscriptionTokens.Where(t => t.Id == row.Id).Select(t => t.ConsumedAt).SingleAsync(ct);
        var now = clock.GetUtcNow();
        if (consumed is not null)
        {
            return subscription.Status == SubscriptionStatus.Confirmed
                ? new TokenResult(TokenOutcome.AlreadyDone, list.Id, list.Name, subscriber.Email, subscription.ConfirmedAt, LangOf(subscription))
                : new TokenResult(TokenOutcome.Invalid);
        }
        if (row.ExpiresAt <= now)
        {
            return new TokenResult(TokenOutcome.Expired, list.Id, list.Name, subscriber.Email, Lang: LangOf(subscription));
        }

        subscription.Status = SubscriptionStatus.Confirmed;
        subscription.ConfirmedAt = now;
        subscription.UpdatedAt = now;
        // Confirming proves the mailbox works again.
        subscriber.UndeliverableAt = null;
        subscriber.UndeliverableReason = null;
        // The token from the subscribe answer is the tenant's, never in a mail: its use is the tenant's, not a link click.
        var source = row.Channel == TokenChannel.Api ? origin with { Source = ConsentSources.Api } : origin;
        AddConsent(list.TenantId, list.Id, subscriber.Id, ConsentActions.Confirm, source, now, null);
        await db.SaveChangesAsync(ct);
        await ConsumeConfirmTokensAsync(subscription.Id, now, ct);
        await tx.CommitAsync(ct);
        return new TokenResult(TokenOutcome.Done, list.Id, list.Name, subscriber.Email, now, LangOf(subscription));
    }

    public async Task<UnsubscribeTokenResponse?> IssueUnsubscribeTokenAsync(Guid tenantId, Guid listId, EmailAddress email, CancellationToken ct)
    {
        var subscriptionId = await FindSubscriptionIdAsync(tenantId, listId, email, ct);
        if (subscriptionId is null)
        {
            return null;
        }
        var (token, expiresAt) = AddToken(subscriptionId.Value, TokenPurpose.Unsubscribe, options.Value.UnsubscribeTokenLifetime, clock.GetUtcNow());
        await db.SaveChangesAsync(ct);
        return new UnsubscribeTokenResponse(listId.ToString(), email.Value, token, expiresAt);
    }

    /// <summary>The subscription an unsubscribe token stands for, if the token is still valid.</summary>
    public async Task<SubscriptionView?> ViewByUnsubscribeTokenAsync(string? token, CancellationToken ct)
    {
        var (subscriptionId, _) = await ResolveUnsubscribeTokenAsync(token, ct);
        if (subscriptionId is null)
        {
            return null;
        }
        var subscription = await db.Subscriptions.AsNoTracking().SingleAsync(s => s.Id == subscriptionId, ct);
        var (list, subscriber) = await ContextOfAsync(subscription, ct);
        return new SubscriptionView(subscription.Id, list.Id, list.Name, subscriber.Email, subscription.Status, ParsePreferences(subscription.Preferences));
    }

    public async Task<TokenResult> UnsubscribeAsync(string? token, RequestOrigin origin, CancellationToken ct)
    {
        var (subscriptionId, outcome) = await ResolveUnsubscribeTokenAsync(token, ct);
        if (subscriptionId is null)
        {
            return new TokenResult(outcome);
        }
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var subscription = await LockAsync(subscriptionId.Value, ct);
        var (list, subscriber) = await ContextOfAsync(subscription, ct);
        if (subscription.Status == SubscriptionStatus.Unsubscribed)
        {
            return new TokenResult(TokenOutcome.AlreadyDone, list.Id, list.Name, subscriber.Email, subscription.UnsubscribedAt, LangOf(subscription));
        }
        var now = clock.GetUtcNow();
        await UnsubscribeLockedAsync(subscription, list.TenantId, origin, now, details: null, ct);
        await FlushChangesAsync(ct);
        await tx.CommitAsync(ct);
        return new TokenResult(TokenOutcome.Done, list.Id, list.Name, subscriber.Email, now, LangOf(subscription));
    }

    /// <summary>
    /// The tenant unsubscribes an address from its list (the console): the same change as a reader's unsubscribe link,
    /// change feed included, audited as <c>api</c> with the tenant's note. Null when the address has no subscription
    /// to this list of the tenant.
    /// </summary>
    public async Task<UnsubscribeResponse?> UnsubscribeByTenantAsync(Guid tenantId, Guid listId, EmailAddress email, string? note, RequestOrigin origin,
        CancellationToken ct)
    {
        var id = await FindSubscriptionIdAsync(tenantId, listId, email, ct);
        if (id is null)
        {
            return null;
        }
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var subscription = await LockAsync(id.Value, ct);
        var subscriber = await db.Subscribers.AsNoTracking().SingleAsync(p => p.Id == subscription.SubscriberId, ct);
        if (subscription.Status != SubscriptionStatus.Unsubscribed)
        {
            var details = note is null ? null : JsonSerializer.Serialize(new Dictionary<string, string> { ["note"] = note });
            await UnsubscribeLockedAsync(subscription, tenantId, origin, clock.GetUtcNow(), details, ct);
            await FlushChangesAsync(ct);
        }
        await tx.CommitAsync(ct);
        return new UnsubscribeResponse(listId.ToString(), subscriber.Email, SubscriptionStatuses.Unsubscribed);
    }

    /// <summary>Unsubscribes a subscription the caller has locked; for the token routes and ESP feedback.</summary>
    public async Task UnsubscribeLockedAsync(Subscription subscription, Guid tenantId, RequestOrigin origin, DateTimeOffset now, string? details,
        CancellationToken ct)
    {
        if (subscription.Status == SubscriptionStatus.Confirmed)
        {
            AddChange(subscription.ListId, subscription.SubscriberId, SubscriptionChangeKinds.Unsubscribed, now);
        }
        subscription.Status = SubscriptionStatus.Unsubscribed;
        subscription.UnsubscribedAt = now;
        subscription.UpdatedAt = now;
        AddConsent(tenantId, subscription.ListId, subscription.SubscriberId, ConsentActions.Unsubscribe, origin, now, details);
        await db.SaveChangesAsync(ct);
        // An old confirmation link must not re-subscribe someone who left.
        await ConsumeConfirmTokensAsync(subscription.Id, now, ct);
    }

    private readonly List<(Guid ListId, Guid SubscriberId, string Change, DateTimeOffset At)> _changes = [];

    /// <summary>Notes that a confirmed subscription stopped being sendable; written by <see cref="FlushChangesAsync"/>.</summary>
    public void AddChange(Guid listId, Guid subscriberId, string change, DateTimeOffset at) => _changes.Add((listId, subscriberId, change, at));

    /// <summary>Writes the noted changes to the change feed: call last in the transaction, right before its commit.</summary>
    public async Task FlushChangesAsync(CancellationToken ct)
    {
        await SubscriptionChanges.RecordAsync(db, _changes, ct);
        _changes.Clear();
    }

    public async Task<PreferencesResponse?> GetPreferencesAsync(Guid tenantId, Guid listId, EmailAddress email, CancellationToken ct)
    {
        var id = await FindSubscriptionIdAsync(tenantId, listId, email, ct);
        if (id is null)
        {
            return null;
        }
        var s = await db.Subscriptions.AsNoTracking().SingleAsync(x => x.Id == id, ct);
        return ToPreferences(s, email.Value);
    }

    /// <summary>Merges: given keys are set, keys given as null are removed, others are kept.</summary>
    public async Task<PreferencesResponse?> UpdatePreferencesAsync(Guid tenantId, Guid listId, EmailAddress email, Dictionary<string, JsonElement> changes, RequestOrigin origin, CancellationToken ct)
    {
        var id = await FindSubscriptionIdAsync(tenantId, listId, email, ct);
        if (id is null)
        {
            return null;
        }
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var subscription = await LockAsync(id.Value, ct);
        var now = clock.GetUtcNow();
        ApplyPreferences(subscription, changes, now);
        AddConsent(tenantId, listId, subscription.SubscriberId, ConsentActions.PreferencesUpdated, origin, now, JsonSerializer.Serialize(changes));
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        return ToPreferences(subscription, email.Value);
    }

    /// <summary>The end-user preference page's save, authorised by an unsubscribe token.</summary>
    public async Task<SubscriptionView?> UpdatePreferencesByTokenAsync(string? token, Dictionary<string, JsonElement> changes, RequestOrigin origin, CancellationToken ct)
    {
        var (subscriptionId, _) = await ResolveUnsubscribeTokenAsync(token, ct);
        if (subscriptionId is null)
        {
            return null;
        }
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var subscription = await LockAsync(subscriptionId.Value, ct);
        var (list, subscriber) = await ContextOfAsync(subscription, ct);
        var now = clock.GetUtcNow();
        ApplyPreferences(subscription, changes, now);
        AddConsent(list.TenantId, list.Id, subscriber.Id, ConsentActions.PreferencesUpdated, origin, now, JsonSerializer.Serialize(changes));
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        return new SubscriptionView(subscription.Id, list.Id, list.Name, subscriber.Email, subscription.Status, ParsePreferences(subscription.Preferences));
    }

    public const int MaxPreferenceKeys = 50;
    public const int MaxPreferencesBytes = 8 * 1024;

    private static string? LangOf(Subscription s) => Reader.ReaderLooks.LangOf(ParsePreferences(s.Preferences));

    public static Dictionary<string, JsonElement> ParsePreferences(string json) =>
        JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(json) ?? [];

    /// <exception cref="PreferencesTooLargeException">The merged preferences would exceed the limits.</exception>
    private static void ApplyPreferences(Subscription subscription, Dictionary<string, JsonElement> changes, DateTimeOffset now)
    {
        var prefs = ParsePreferences(subscription.Preferences);
        foreach (var (key, value) in changes)
        {
            if (value.ValueKind == JsonValueKind.Null)
            {
                prefs.Remove(key);
            }
            else
            {
                prefs[key] = value;
            }
        }
        // The limits hold for what is stored, not only for each change: many small updates cannot grow it without bound.
        var json = JsonSerializer.Serialize(prefs);
        var bytes = System.Text.Encoding.UTF8.GetByteCount(json);
        if (prefs.Count > MaxPreferenceKeys || bytes > MaxPreferencesBytes)
        {
            throw new PreferencesTooLargeException(
                $"With this change the subscription would hold {prefs.Count} keys in {bytes} bytes; "
                + $"at most {MaxPreferenceKeys} keys and {MaxPreferencesBytes} bytes are kept (remove keys by setting them to null).");
        }
        subscription.Preferences = json;
        subscription.UpdatedAt = now;
    }

    private static PreferencesResponse ToPreferences(Subscription s, string email) =>
        new(s.ListId.ToString(), email, StatusName(s.Status), ParsePreferences(s.Preferences), s.UpdatedAt);

    public static string StatusName(SubscriptionStatus status) => status switch
    {
        SubscriptionStatus.Pending => SubscriptionStatuses.Pending,
        SubscriptionStatus.Confirmed => SubscriptionStatuses.Confirmed,
        _ => SubscriptionStatuses.Unsubscribed,
    };

    private async Task<Guid?> FindSubscriptionIdAsync(Guid tenantId, Guid listId, EmailAddress email, CancellationToken ct) =>
        await (from s in db.Subscriptions
               join l in db.MailingLists on s.ListId equals l.Id
               join p in db.Subscribers on s.SubscriberId equals p.Id
               where l.Id == listId && l.TenantId == tenantId && p.TenantId == tenantId && p.EmailKey == email.Key
               select (Guid?)s.Id).FirstOrDefaultAsync(ct);

    /// <summary>
    /// The subscription an unsubscribe token stands for: a stateless link token (verified against its link key) or a
    /// stored token (looked up by hash). Expired means the token was genuine but is past its lifetime.
    /// </summary>
    private async Task<(Guid? SubscriptionId, TokenOutcome Outcome)> ResolveUnsubscribeTokenAsync(string? token, CancellationToken ct)
    {
        if (UnsubscribeLinkToken.TryParse(token, out var link))
        {
            return await ResolveLinkTokenAsync(link, ct);
        }
        if (!SubscriptionTokens.IsWellFormed(token))
        {
            return (null, TokenOutcome.Invalid);
        }
        var hash = SubscriptionTokens.Hash(token!);
        var now = clock.GetUtcNow();
        var row = await db.SubscriptionTokens
            .Where(t => t.Hash == hash && t.Purpose == TokenPurpose.Unsubscribe)
            .Select(t => new { t.SubscriptionId, t.ExpiresAt })
            .FirstOrDefaultAsync(ct);
        // Only a token of this purpose is "expired" here; another purpose's token is as unknown as a made-up one.
        return row is null ? (null, TokenOutcome.Invalid)
            : row.ExpiresAt > now ? (row.SubscriptionId, TokenOutcome.Done)
            : (null, TokenOutcome.Expired);
    }

    private static readonly TimeSpan ClockSkew = TimeSpan.FromMinutes(5);

    private async Task<(Guid? SubscriptionId, TokenOutcome Outcome)> ResolveLinkTokenAsync(UnsubscribeLinkToken.Parsed link, CancellationToken ct)
    {
        var key = await linkKeys.FindAsync(link.KeyId, ct);
        if (key is null)
        {
            return (null, TokenOutcome.Invalid); // unknown or retired key
        }
        var issuedAt = DateTimeOffset.FromUnixTimeSeconds(Math.Min(link.IssuedAt, 253_402_300_799)); // ≤ year 9999
        // A link is only ever issued while its key signs.
        if (issuedAt < key.CreatedAt - ClockSkew || issuedAt > key.SignsUntil + ClockSkew)
        {
            return (null, TokenOutcome.Invalid);
        }
        // The list gives the tenant the MAC is bound to; the subscription must exist in that tenant.
        var row = await (from s in db.Subscriptions
                         join l in db.MailingLists on s.ListId equals l.Id
                         join p in db.Subscribers on s.SubscriberId equals p.Id
                         where s.ListId == link.ListId && s.SubscriberId == link.SubscriberId && p.TenantId == l.TenantId
                         select new { s.Id, l.TenantId }).AsNoTracking().FirstOrDefaultAsync(ct);
        if (row is null)
        {
            return (null, TokenOutcome.Invalid);
        }
        var expected = UnsubscribeLinkToken.Mac(key.DeriveLinkKey(row.TenantId, link.ListId, link.IssuedAt), link.SubscriberId);
        if (!System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(expected, link.Mac))
        {
            return (null, TokenOutcome.Invalid);
        }
        var now = clock.GetUtcNow();
        if (issuedAt > now + ClockSkew)
        {
            return (null, TokenOutcome.Invalid);
        }
        return issuedAt + options.Value.UnsubscribeTokenLifetime <= now ? (null, TokenOutcome.Expired) : (row.Id, TokenOutcome.Done);
    }

    private (string Token, DateTimeOffset ExpiresAt) AddToken(Guid subscriptionId, TokenPurpose purpose, TimeSpan lifetime, DateTimeOffset now)
    {
        var (token, hash) = SubscriptionTokens.New();
        var expiresAt = now + lifetime;
        db.SubscriptionTokens.Add(new SubscriptionToken
        {
            Id = Guid.CreateVersion7(),
            SubscriptionId = subscriptionId,
            Purpose = purpose,
            Hash = hash,
            CreatedAt = now,
            ExpiresAt = expiresAt,
        });
        return (token, expiresAt);
    }

    public void AddConsent(Guid tenantId, Guid listId, Guid subscriberId, string action, RequestOrigin origin, DateTimeOffset now, string? details) =>
        db.ConsentRecords.Add(new ConsentRecord
        {
            TenantId = tenantId,
            ListId = listId,
            SubscriberId = subscriberId,
            Action = action,
            Source = origin.Source,
            IpAddress = origin.IpAddress,
            UserAgent = origin.UserAgent,
            OccurredAt = now,
            Details = details,
        });

    private Task ConsumeConfirmTokensAsync(Guid subscriptionId, DateTimeOffset now, CancellationToken ct) =>
        db.SubscriptionTokens
            .Where(t => t.SubscriptionId == subscriptionId && t.Purpose == TokenPurpose.Confirm && t.ConsumedAt == null)
            .ExecuteUpdateAsync(u => u.SetProperty(t => t.ConsumedAt, now), ct);

    public async Task<Subscription> LockAsync(Guid subscriptionId, CancellationToken ct) =>
        (await db.Subscriptions.FromSql($"SELECT * FROM subscriptions WHERE id = {subscriptionId} FOR UPDATE").ToListAsync(ct)).Single();

    private async Task<(Lists.MailingList List, Subscriber Subscriber)> ContextOfAsync(Subscription subscription, CancellationToken ct)
    {
        var list = await db.MailingLists.SingleAsync(l => l.Id == subscription.ListId, ct);
        var subscriber = await db.Subscribers.SingleAsync(p => p.Id == subscription.SubscriberId, ct);
        return (list, subscriber);
    }
}

/// <summary>A preference change whose result would exceed <see cref="SubscriptionService.MaxPreferenceKeys"/> or
/// <see cref="SubscriptionService.MaxPreferencesBytes"/>; nothing was changed.</summary>
public sealed class PreferencesTooLargeException(string message) : Exception(message);
