using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;
using Newsletter.ServiceDefaults.Privacy;
using Npgsql;
using SendEngine.Data;
using SendEngine.Extensions;
using SendEngine.Features.Suppressions;

namespace SendEngine.Features.Privacy;

/// <summary>
/// Member Center's calls for one address of one tenant (its own token: audience send_engine_internal, scope
/// internal:subscribers.erase; tenant tokens are refused): export, erase, and lift an erasure when the address subscribes
/// anew. Documented in docs/send-engine.md, "Internal routes for Member Center".
/// </summary>
public static class SubscriberDataApi
{
    public static IEndpointRouteBuilder MapSubscriberDataApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/internal/subscribers").WithTags("Internal (Member Center)");
        api.MapPost("/export", Export).RequireAuthorization(AuthExtensions.InternalSubscribers).WithName("exportSubscriberData")
            .WithSummary("Deliveries, events and suppressions of the address for the tenant.");
        api.MapPost("/erase", Erase).RequireAuthorization(AuthExtensions.InternalSubscribers).WithName("eraseSubscriberData")
            .WithSummary("Replace the address by its keyed hash everywhere and keep a hashed suppression; idempotent.");
        api.MapPost("/lift-erasure", Lift).RequireAuthorization(AuthExtensions.InternalSubscribers).WithName("liftSubscriberErasure")
            .WithSummary("The address subscribed anew: remove the hashed suppression its erasure left.");
        return app;
    }

    private static bool TryRead(SubscriberDataRequest request, out Guid tenantId, out string email, out Dictionary<string, string[]> errors)
    {
        var v = new Validation();
        if (!Guid.TryParse(request.TenantId, out tenantId))
        {
            v.Add("tenant_id", "The tenant_id field is required (a UUID).");
        }
        email = request.Email is { } e ? Suppression.Normalize(e) : "";
        if (email.Length is 0 or > 320 || !email.Contains('@') || email.StartsWith(AddressHasher.ErasedPrefix, StringComparison.Ordinal))
        {
            v.Add("email", "The email field is required (an address).");
        }
        errors = v.Errors;
        return v.IsValid;
    }

    private static async Task<Results<Ok<SendEngineExport>, ValidationProblem>> Export(
        SubscriberDataRequest request, NpgsqlDataSource db, AddressHasher hasher, CancellationToken ct)
    {
        if (!TryRead(request, out var tenantId, out var email, out var errors))
        {
            return TypedResults.ValidationProblem(errors);
        }
        await using var conn = await db.OpenConnectionAsync(ct);
        var deliveries = new List<ExportedDelivery>();
        await using (var cmd = Sql.Command(conn, """
            SELECT r.job_id, j.list_id, j.subject, r.status, r.preferences::text, CASE WHEN r.attempts > 0 THEN r.message_id END, r.detail, r.sent_at, r.updated_at
            FROM send_job_recipients r JOIN send_jobs j ON j.id = r.job_id
            WHERE j.tenant_id = $1 AND lower(btrim(r.email)) = $2
            ORDER BY r.id
            """, tenantId, email))
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                deliveries.Add(new ExportedDelivery(reader.GetGuid(0).ToString(), reader.GetGuid(1).ToString(), reader.GetString(2), reader.GetString(3),
                    JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(reader.GetString(4)) ?? [],
                    reader.IsDBNull(5) ? null : reader.GetString(5), reader.IsDBNull(6) ? null : reader.GetString(6),
                    reader.IsDBNull(7) ? null : reader.GetFieldValue<DateTimeOffset>(7), reader.GetFieldValue<DateTimeOffset>(8)));
            }
        }
        var events = new List<ExportedEmailEvent>();
        await using (var cmd = Sql.Command(conn, """
            SELECT event_type, occurred_at, job_id, message_id, link, reason, bounce_type, user_agent, ip_address
            FROM email_events WHERE tenant_id = $1 AND lower(btrim(email)) = $2
            ORDER BY id
            """, tenantId, email))
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                events.Add(new ExportedEmailEvent(reader.GetString(0), reader.GetFieldValue<DateTimeOffset>(1),
                    reader.IsDBNull(2) ? null : reader.GetGuid(2).ToString(), reader.GetString(3), Text(reader, 4), Text(reader, 5), Text(reader, 6), Text(reader, 7), Text(reader, 8)));
            }
        }
        var suppressions = new List<ExportedSuppression>();
        await using (var cmd = Sql.Command(conn, "SELECT reason, source, created_at FROM suppressions WHERE tenant_id = $1 AND email = ANY($2)",
            tenantId, new[] { email, hasher.ErasedMarker(email) }))
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                suppressions.Add(new ExportedSuppression(reader.GetString(0), reader.GetString(1), reader.GetFieldValue<DateTimeOffset>(2)));
            }
        }
        var transactional = new List<ExportedTransactionalTask>();
        await using (var cmd = Sql.Command(conn, $"""
            SELECT t.id, t.request_id, t.type, {Transactional.TransactionalTaskStore.ShownStatusSql("t")}, t.reject_reason, r.message::jsonb->>'subject', t.metadata::text, {Transactional.TransactionalTaskStore.ShownMessageIdSql("t")}, t.detail,
                   t.created_at, t.sent_at
            FROM transactional_tasks t JOIN transactional_requests r ON r.id = t.request_id
            WHERE t.tenant_id = $1 AND (t.email_key = $2 OR lower(btrim(t.email)) = $2)
            ORDER BY t.created_at, t.id
            """, tenantId, email))
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                transactional.Add(new ExportedTransactionalTask(reader.GetGuid(0).ToString(), reader.GetGuid(1).ToString(), reader.GetString(2),
                    reader.GetString(3), Text(reader, 4), Text(reader, 5),
                    JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(reader.GetString(6)) ?? [],
                    Text(reader, 7), Text(reader, 8), reader.GetFieldValue<DateTimeOffset>(9),
                    reader.IsDBNull(10) ? null : reader.GetFieldValue<DateTimeOffset>(10)));
            }
        }
        return TypedResults.Ok(new SendEngineExport(deliveries, events, suppressions, transactional));
    }

    /// <summary>
    /// In one transaction: snapshot rows and events keep their delivery facts but the address becomes its keyed hash
    /// (merge data, server replies, raw payloads, links, user agents and IPs are removed); queued reports to Member Center
    /// are deleted; the address's suppressions become one hashed suppression (reason erased); transactional tasks and
    /// their requests lose the address too (<see cref="TransactionalErasure"/>). Pending snapshot rows and tasks are then
    /// skipped as suppressed. Repeating it changes nothing.
    /// </summary>
    private static async Task<Results<Ok<SendEngineErasureResult>, ValidationProblem>> Erase(
        SubscriberDataRequest request, NpgsqlDataSource db, AddressHasher hasher, TimeProvider clock, CancellationToken ct)
    {
        if (!TryRead(request, out var tenantId, out var email, out var errors))
        {
            return TypedResults.ValidationProblem(errors);
        }
        var marker = hasher.ErasedMarker(email);
        var now = clock.GetUtcNow();
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        var deliveries = await Sql.ExecuteAsync(conn, tx, """
            UPDATE send_job_recipients r SET email = $3, preferences = '{}'::jsonb, unsubscribe_url = NULL, detail = NULL
            FROM send_jobs j
            WHERE j.id = r.job_id AND j.tenant_id = $1 AND lower(btrim(r.email)) = $2
            """, ct, tenantId, email, marker);
        var events = await Sql.ExecuteAsync(conn, tx, """
            UPDATE email_events SET email = $3, payload = '{}', link = NULL, reason = NULL, user_agent = NULL, ip_address = NULL
            WHERE tenant_id = $1 AND lower(btrim(email)) = $2
            """, ct, tenantId, email, marker);
        var transactional = await TransactionalErasure.EraseAsync(conn, tx, tenantId, email, marker, ct);
        var reports = await Sql.ExecuteAsync(conn, tx, "DELETE FROM member_center_reports WHERE tenant_id = $1 AND lower(btrim(email)) = $2", ct, tenantId, email);
        var suppressions = await Sql.ExecuteAsync(conn, tx, "DELETE FROM suppressions WHERE tenant_id = $1 AND email = $2", ct, tenantId, email);
        await Sql.ExecuteAsync(conn, tx, """
            INSERT INTO suppressions (tenant_id, email, reason, source, created_at) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (tenant_id, email) DO NOTHING
            """, ct, tenantId, marker, SuppressionStore.ReasonErased, SuppressionStore.SourceErasure, now);
        await tx.CommitAsync(ct);
        return TypedResults.Ok(new SendEngineErasureResult(tenantId.ToString(), deliveries, events, suppressions, reports, transactional));
    }

    private static async Task<Results<Ok<LiftErasureResult>, ValidationProblem>> Lift(
        SubscriberDataRequest request, NpgsqlDataSource db, AddressHasher hasher, CancellationToken ct)
    {
        if (!TryRead(request, out var tenantId, out var email, out var errors))
        {
            return TypedResults.ValidationProblem(errors);
        }
        var lifted = await Sql.ExecuteAsync(db, "DELETE FROM suppressions WHERE tenant_id = $1 AND email = $2 AND reason = $3", ct,
            tenantId, hasher.ErasedMarker(email), SuppressionStore.ReasonErased);
        return TypedResults.Ok(new LiftErasureResult(tenantId.ToString(), lifted > 0));
    }

    private static string? Text(NpgsqlDataReader reader, int i) => reader.IsDBNull(i) ? null : reader.GetString(i);
}
