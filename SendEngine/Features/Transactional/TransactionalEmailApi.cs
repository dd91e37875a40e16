using Newsletter.ServiceDefaults.Privacy;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;
using Newsletter.Contracts.Transactional;
using Newsletter.ServiceDefaults.Background;
using Newsletter.ServiceDefaults.Mail;
using Newsletter.ServiceDefaults.OperationLog;
using Npgsql;
using Newsletter.ServiceDefaults;
using SendEngine.Data;
using SendEngine.Features.ApiKeys;
using SendEngine.Features.SenderDomains;
using SendEngine.Features.Suppressions;
using S = Newsletter.Contracts.Transactional.EmailTaskStatuses;

namespace SendEngine.Features.Transactional;

/// <summary>
/// Seed 003's e-mail channel: POST /api/v1/email (and /api/v1/email.json), GET a task, a request, and a search by
/// metadata. Authenticated by X-Pigeon-Api-Key; errors in the seed's {"error": {code, name, message}} shape only here.
/// </summary>
public static partial class TransactionalEmailApi
{
    private const int MaxIdempotencyKey = 200;

    public static IEndpointRouteBuilder MapTransactionalEmailApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1/email");
        // The seed's format suffix: /api/v1/email.json is the same route as /api/v1/email.
        foreach (var (path, suffix) in new[] { ("/api/v1/email", ""), ("/api/v1/email.json", "Json") })
        {
            // Each send has its own record (transactional_requests and their tasks), not an operation-log row.
            Documented(app.MapPost(path, Send).WithName("sendEmail" + suffix).WithoutOperationLog()
                .WithSummary("Send a message to each recipient of message.to (one task each); Idempotency-Key makes retries safe.")
                .Accepts<SendEmailRequest>("application/json")
                .Produces<SendEmailResponse>()
                .Produces<TransactionalErrorResponse>(StatusCodes.Status413PayloadTooLarge));
            Documented(app.MapGet(path, Search).WithName("searchEmailTasks" + suffix)
                .WithSummary("The tenant's tasks, newest first, filtered by metadata.KEY=VALUE, from and to (created_at).")
                .Produces<EmailTaskPage>());
        }
        Documented(api.MapGet("/requests/{request_id}", GetRequest).WithName("getEmailRequest").WithSummary("A request's tasks and their status.")
            .Produces<EmailRequestResponse>().Produces<TransactionalErrorResponse>(StatusCodes.Status404NotFound));
        Documented(api.MapGet("/{task_id}", GetTask).WithName("getEmailTask")
            .WithSummary("One task: status, reject_reason, timestamps and its events (delivered, opened, clicked, bounced, complained).")
            .Produces<EmailTaskResponse>().Produces<TransactionalErrorResponse>(StatusCodes.Status404NotFound));
        return app;
    }

    /// <summary>What every route of this API shares: the API key, the seed's errors, the tag.</summary>
    private static void Documented(RouteHandlerBuilder route) =>
        route.WithTags("Transactional email").RequireApiKey().AddEndpointFilter(GeneralErrorFilter)
            .Produces<TransactionalErrorResponse>(StatusCodes.Status400BadRequest)
            .Produces<TransactionalErrorResponse>(StatusCodes.Status403Forbidden)
            .Produces<TransactionalErrorResponse>(StatusCodes.Status500InternalServerError);

    /// <summary>A failure of ours is GENERAL_ERROR in the seed's shape (logged), not the service's problem+json.</summary>
    private static async ValueTask<object?> GeneralErrorFilter(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        try
        {
            return await next(context);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !context.HttpContext.RequestAborted.IsCancellationRequested)
        {
            var logger = context.HttpContext.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(TransactionalEmailApi));
            LogFailed(logger, context.HttpContext.Request.Path, ex);
            return TransactionalErrors.GeneralError.Result("The request could not be processed; retry it with the same Idempotency-Key.");
        }
    }

    [LoggerMessage(LogLevel.Error, "Transactional API {Path} failed")]
    private static partial void LogFailed(ILogger logger, string path, Exception ex);

    private static async Task<IResult> Send(HttpContext http, TransactionalIntake intake, SenderDomainStore senderDomains, NpgsqlDataSource db,
        IOptions<TransactionalOptions> options, IOptions<JsonOptions> json, WakeSignal<TransactionalDispatcher> wake, TimeProvider clock,
        AddressHasher hasher, CancellationToken ct)
    {
        var tenantId = http.User.TenantId();
        var o = options.Value;
        var body = await ReadBodyAsync(http, o.MaxRequestBytes, ct);
        if (body is null)
        {
            return TransactionalErrors.RequestTooLarge.Result($"The request body is larger than {o.MaxRequestBytes} bytes (Transactional:MaxRequestBytes).");
        }
        var jsonOptions = json.Value.SerializerOptions;
        SendEmailRequest? request;
        try
        {
            request = JsonSerializer.Deserialize<SendEmailRequest>(body, jsonOptions);
        }
        catch (JsonException ex)
        {
            var field = ex.Path is { Length: > 2 } path ? path.TrimStart('$', '.') : "body";
            return Invalid(new Dictionary<string, string> { [field] = "The body is not the expected JSON here." });
        }
        if (request is null)
        {
            return Invalid(new Dictionary<string, string> { ["body"] = "The body must be a JSON object." });
        }
        var now = clock.GetUtcNow();
        var problems = new EmailRequestProblems();
        var sendAt = EmailRequestValidator.Validate(request, o, now, problems);
        var idempotencyKey = http.Request.Headers["Idempotency-Key"].ToString();
        if (idempotencyKey.Length > MaxIdempotencyKey)
        {
            problems.Add("Idempotency-Key", $"The Idempotency-Key header must be at most {MaxIdempotencyKey} characters.");
        }
        if (problems.TooLarge is { } tooLarge)
        {
            return TransactionalErrors.RequestTooLarge.Result(tooLarge);
        }
        if (!problems.Ok)
        {
            return Invalid(problems.Fields);
        }
        var key = idempotencyKey.Length > 0 ? idempotencyKey : null;
        var hash = SHA256.HashData(body);
        if (key is not null && await FindByKeyAsync(db, tenantId, key, ct) is { } first)
        {
            return Replay(first, hash, jsonOptions);
        }
        var m = request.Message!;
        var due = sendAt is { } at && at > now ? at : now;
        var scheduled = due > now;
        var (paused, tasks) = await PlanTasksAsync(db, hasher, tenantId, m, scheduled, ct);
        if (paused)
        {
            return TransactionalErrors.SendingPaused.Result("A platform operator paused this tenant's mail, transactional included; nothing was accepted.");
        }
        if (!await senderDomains.MaySendAsync(tenantId, m.FromEmail, ct))
        {
            // A from_email outside the tenant's verified sender domains (registered ones while SenderDomains:AllowUnverified):
            // nothing is sent, every task says why.
            tasks = tasks.Select(t => t.Status is S.Invalid ? t : t with { Status = S.Rejected, RejectReason = EmailRejectReasons.InvalidSender, MessageId = null }).ToList();
        }
        var requestId = Guid.NewGuid();
        var answer = new SendEmailResponse(requestId.ToString("N"),
            tasks.Select(t => new EmailTaskResult(t.Email, t.Status, t.RejectReason, t.Id.ToString("N"))).ToList());
        var row = new TransactionalRequest
        {
            Id = requestId,
            TenantId = tenantId,
            IdempotencyKey = key,
            BodyHash = hash,
            Message = JsonSerializer.Serialize(m, jsonOptions),
            Metadata = JsonSerializer.Serialize(m.Metadata ?? new Dictionary<string, JsonElement>()),
            SendAt = sendAt,
            CallbackUrl = request.Callback?.Url,
            CallbackType = request.Callback?.Type,
            Response = JsonSerializer.Serialize(answer, jsonOptions),
            CreatedAt = now,
            CompletedAt = tasks.All(t => t.Status is S.Rejected or S.Invalid) ? now : null,
        };
        if (!await intake.StoreAsync(row, tasks, due, ct))
        {
            // A concurrent request with the same key was stored first: its answer is the answer, and nothing of this one exists.
            return await FindByKeyAsync(db, tenantId, key!, ct) is { } winner ? Replay(winner, hash, jsonOptions)
                : throw new InvalidOperationException("An Idempotency-Key conflicted but its request is gone.");
        }
        if (!scheduled && tasks.Any(t => t.Status == S.Queued))
        {
            wake.Notify();
        }
        return Results.Text(row.Response, "application/json", statusCode: 200);
    }

    /// <summary>The body, or null when it is larger than <paramref name="limit"/> (read no further than that).</summary>
    private static async Task<byte[]?> ReadBodyAsync(HttpContext http, int limit, CancellationToken ct)
    {
        if (http.Request.ContentLength > limit)
        {
            return null;
        }
        // This route enforces its own limit (413 in the seed's shape) instead of the server's.
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = limit + 1L;
        }
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        try
        {
            while ((read = await http.Request.Body.ReadAsync(chunk, ct)) > 0)
            {
                if (buffer.Length + read > limit)
                {
                    return null;
                }
                buffer.Write(chunk, 0, read);
            }
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return null;
        }
        return buffer.ToArray();
    }

    /// <summary>The first answer again (re-serialized: jsonb keeps neither key order nor spacing), or a refusal when the body differs.</summary>
    private static IResult Replay((string Response, byte[]? Hash) first, byte[] hash, JsonSerializerOptions json) =>
        first.Hash is not null && !CryptographicOperations.FixedTimeEquals(first.Hash, hash)
            ? Invalid(new Dictionary<string, string>
            {
                ["Idempotency-Key"] = "This Idempotency-Key was used with another body; use a new key for a new message.",
            })
            : Results.Text(JsonSerializer.Serialize(JsonSerializer.Deserialize<SendEmailResponse>(first.Response, json), json),
                "application/json", statusCode: 200);

    private static async Task<(string Response, byte[]? Hash)?> FindByKeyAsync(NpgsqlDataSource db, Guid tenantId, string key, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var cmd = Sql.Command(conn, "SELECT response::text, body_hash FROM transactional_requests WHERE tenant_id = $1 AND idempotency_key = $2",
            tenantId, key);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        return await reader.ReadAsync(ct) ? (reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetFieldValue<byte[]>(1)) : null;
    }

    /// <summary>
    /// Whether an operator paused the tenant's transactional mail, and one task per distinct recipient: invalid
    /// (malformed address), rejected (suppressed), else queued or scheduled. Both look-ups share one round trip (one
    /// implicit transaction), the request's only one before its insert.
    /// </summary>
    private static async Task<(bool Paused, List<NewTask> Tasks)> PlanTasksAsync(NpgsqlDataSource db, AddressHasher hasher, Guid tenantId, EmailMessage m, bool scheduled, CancellationToken ct)
    {
        var metadata = m.Metadata ?? new Dictionary<string, JsonElement>();
        var perRecipient = new Dictionary<string, IReadOnlyDictionary<string, JsonElement>>(StringComparer.Ordinal);
        foreach (var r in m.RecipientMetadata ?? [])
        {
            if (EmailAddresses.TryNormalize(r.Rcpt, out _, out var k, out _) && r.Values is not null)
            {
                perRecipient[k] = r.Values;
            }
        }
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var planned = new List<(EmailRecipient R, string Value, string Key, bool Valid)>();
        foreach (var r in m.To!)
        {
            if (EmailAddresses.TryNormalize(r.Email, out var value, out var key, out _))
            {
                // The same mailbox twice is one recipient: one task, one message.
                if (seen.Add(key))
                {
                    planned.Add((r, value, key, true));
                }
            }
            else
            {
                planned.Add((r, r.Email!.Trim(), r.Email!.Trim().ToLowerInvariant(), false));
            }
        }
        bool paused;
        Dictionary<string, string> suppressed;
        await using (var conn = await db.OpenConnectionAsync(ct))
        {
            var (find, keyOf) = SuppressionStore.FindCommand(hasher, tenantId, planned.Where(p => p.Valid).Select(p => p.Key).ToArray());
            await using var batch = new NpgsqlBatch(conn) { BatchCommands = { Reputation.ReputationStore.TransactionalPausedCommand(tenantId), find } };
            await using var reader = await batch.ExecuteReaderAsync(ct);
            paused = await reader.ReadAsync(ct) && reader.GetBoolean(0);
            await reader.NextResultAsync(ct);
            suppressed = await SuppressionStore.ReadFoundAsync(reader, keyOf, ct);
        }
        if (paused)
        {
            return (true, []);
        }
        var tasks = new List<NewTask>(planned.Count);
        foreach (var (r, value, key, valid) in planned)
        {
            var own = new Dictionary<string, JsonElement>(metadata);
            if (perRecipient.TryGetValue(key, out var values))
            {
                foreach (var (k, v) in values)
                {
                    own[k] = v;
                }
            }
            var (status, reason) = !valid ? (S.Invalid, EmailRejectReasons.Invalid)
                : suppressed.TryGetValue(key, out var why) ? (S.Rejected, TransactionalDispatcher.RejectReasonOf(why))
                : (scheduled ? S.Scheduled : S.Queued, (string?)null);
            // The Message-ID of a task to send is chosen now, so that its final update changes no indexed column (HOT).
            tasks.Add(new NewTask(Guid.NewGuid(), tasks.Count, value, key, r.Name, TransactionalComposer.TypeOf(r), status,
                status == S.Invalid ? null : reason, JsonSerializer.Serialize(own),
                status is S.Queued or S.Scheduled ? TransactionalComposer.NewMessageId(m.FromEmail!) : null));
        }
        return (false, tasks);
    }

    private static async Task<IResult> GetTask(string task_id, HttpContext http, NpgsqlDataSource db, CancellationToken ct) =>
        await FindTaskAsync(http.User.TenantId(), task_id, db, ct) is { } task ? Results.Json(task) : NotFound("task", task_id);

    /// <summary>The tenant's task with its events, or null (unknown, malformed or another tenant's id).</summary>
    internal static async Task<EmailTaskResponse?> FindTaskAsync(Guid tenantId, string taskId, NpgsqlDataSource db, CancellationToken ct)
    {
        if (!TryId(taskId, out var id))
        {
            return null;
        }
        var tasks = await QueryTasksAsync(db, "t.tenant_id = $1 AND t.id = $2", [tenantId, id], 1, ct);
        return tasks.Count == 0 ? null : tasks[0];
    }

    private static async Task<IResult> GetRequest(string request_id, HttpContext http, NpgsqlDataSource db, CancellationToken ct)
    {
        var tenantId = http.User.TenantId();
        if (!TryId(request_id, out var id))
        {
            return NotFound("request", request_id);
        }
        await using var conn = await db.OpenConnectionAsync(ct);
        DateTimeOffset createdAt;
        DateTimeOffset? sendAt;
        await using (var cmd = Sql.Command(conn, "SELECT created_at, send_at FROM transactional_requests WHERE tenant_id = $1 AND id = $2", tenantId, id))
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            if (!await reader.ReadAsync(ct))
            {
                return NotFound("request", request_id);
            }
            createdAt = reader.GetFieldValue<DateTimeOffset>(0);
            sendAt = reader.IsDBNull(1) ? null : reader.GetFieldValue<DateTimeOffset>(1);
        }
        var tasks = new List<EmailTaskResult>();
        await using (var cmd = Sql.Command(conn, $"SELECT t.email, {TransactionalTaskStore.ShownStatusSql("t")}, t.reject_reason, t.id FROM transactional_tasks t WHERE t.request_id = $1 ORDER BY t.position", id))
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                tasks.Add(new EmailTaskResult(reader.GetString(0), Shown(reader.GetString(1)), reader.IsDBNull(2) ? null : reader.GetString(2),
                    reader.GetGuid(3).ToString("N")));
            }
        }
        return Results.Json(new EmailRequestResponse(id.ToString("N"), createdAt, sendAt, tasks));
    }

    private static async Task<IResult> Search(HttpContext http, NpgsqlDataSource db, IOptions<TransactionalOptions> options, CancellationToken ct)
    {
        var (errors, page) = await SearchAsync(http.User.TenantId(), http.Request.Query, db, options.Value, ct);
        return errors is not null ? Invalid(errors) : Results.Json(page);
    }

    /// <summary>
    /// The tenant's tasks matching the query (email, metadata.KEY=VALUE, from, to, after, limit), newest first; or the
    /// bad parameters by name. Shared by the API-key route and the token route of the console.
    /// </summary>
    internal static async Task<(Dictionary<string, string>? Errors, EmailTaskPage? Page)> SearchAsync(Guid tenantId, IQueryCollection q,
        NpgsqlDataSource db, TransactionalOptions options, CancellationToken ct)
    {
        var errors = new Dictionary<string, string>();
        var where = new List<string> { "t.tenant_id = $1" };
        var args = new List<object> { tenantId };
        DateTimeOffset? Time(string name)
        {
            if (q[name].ToString() is not { Length: > 0 } s)
            {
                return null;
            }
            if (DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var v))
            {
                return v;
            }
            errors[name] = $"The {name} must be a date and time (ISO 8601, or YYYY-MM-DD HH:MM:SS in UTC).";
            return null;
        }
        if (Time("from") is { } from)
        {
            args.Add(from);
            where.Add($"t.created_at >= ${args.Count}");
        }
        if (Time("to") is { } to)
        {
            args.Add(to);
            where.Add($"t.created_at < ${args.Count}");
        }
        foreach (var (name, values) in q)
        {
            if (!name.StartsWith("metadata.", StringComparison.Ordinal))
            {
                continue;
            }
            var key = name["metadata.".Length..];
            var value = values.ToString();
            if (key.Length is 0 or > 100)
            {
                errors[name] = "A metadata key is 1 to 100 characters.";
                continue;
            }
            // jsonb containment (the GIN index): the value as a string, or as the JSON number/boolean it spells.
            args.Add(JsonSerializer.Serialize(new Dictionary<string, string> { [key] = value }));
            var asString = args.Count;
            if (IsJsonScalar(value))
            {
                args.Add($"{{{JsonSerializer.Serialize(key)}: {value}}}");
                where.Add($"(t.metadata @> ${asString}::jsonb OR t.metadata @> ${args.Count}::jsonb)");
            }
            else
            {
                where.Add($"t.metadata @> ${asString}::jsonb");
            }
        }
        if (q["email"].ToString() is { Length: > 0 } email)
        {
            args.Add(EmailAddresses.TryNormalize(email, out _, out var k, out _) ? k : email.Trim().ToLowerInvariant());
            where.Add($"t.email_key = ${args.Count}");
        }
        var limit = options.MaxPageSize;
        if (q["limit"].ToString() is { Length: > 0 } l && (!int.TryParse(l, CultureInfo.InvariantCulture, out limit) || limit < 1 || limit > options.MaxPageSize))
        {
            errors["limit"] = $"The limit must be between 1 and {options.MaxPageSize}.";
        }
        if (q["after"].ToString() is { Length: > 0 } after)
        {
            if (ParseCursor(after) is { } c)
            {
                args.Add(c.CreatedAt);
                args.Add(c.Id);
                where.Add($"(t.created_at, t.id) < (${args.Count - 1}, ${args.Count})");
            }
            else
            {
                errors["after"] = "The after cursor is not one this API gave out.";
            }
        }
        if (errors.Count > 0)
        {
            return (errors, null);
        }
        var items = await QueryTasksAsync(db, string.Join(" AND ", where), [.. args], limit, ct);
        var next = items.Count == limit ? Cursor(items[^1]) : null;
        return (null, new EmailTaskPage(items, next));
    }

    private static bool IsJsonScalar(string value)
    {
        if (value is "true" or "false")
        {
            return true;
        }
        try
        {
            using var doc = JsonDocument.Parse(value);
            return doc.RootElement.ValueKind == JsonValueKind.Number;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static string Cursor(EmailTaskResponse t) =>
        t.CreatedAt.UtcTicks.ToString(CultureInfo.InvariantCulture) + "." + t.TaskId;

    private static (DateTimeOffset CreatedAt, Guid Id)? ParseCursor(string s) =>
        s.Split('.') is [var ticks, var id] && long.TryParse(ticks, CultureInfo.InvariantCulture, out var t)
            && t >= DateTimeOffset.MinValue.UtcTicks && t <= DateTimeOffset.MaxValue.UtcTicks && Guid.TryParseExact(id, "N", out var g)
            ? (new DateTimeOffset(t, TimeSpan.Zero), g) : null;

    /// <summary>Tasks (newest first) with their events; <paramref name="where"/> binds $1… to <paramref name="args"/>.</summary>
    private static async Task<List<EmailTaskResponse>> QueryTasksAsync(NpgsqlDataSource db, string where, object[] args, int limit, CancellationToken ct)
    {
        var rows = new List<EmailTaskResponse>();
        var messageIds = new List<(int Index, Guid TenantId, string EmailKey, string MessageId)>();
        await using var conn = await db.OpenConnectionAsync(ct);
        await using (var cmd = Sql.Command(conn, $"""
            SELECT t.id, t.request_id, t.email, t.type, {TransactionalTaskStore.ShownStatusSql("t")}, t.reject_reason, t.detail, t.attempts, t.created_at, r.send_at, t.sent_at,
                t.finished_at, t.metadata::text, {TransactionalTaskStore.ShownMessageIdSql("t")}, t.tenant_id, t.email_key
            FROM transactional_tasks t JOIN transactional_requests r ON r.id = t.request_id
            WHERE {where}
            ORDER BY t.created_at DESC, t.id DESC LIMIT {limit.ToString(CultureInfo.InvariantCulture)}
            """, args))
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                rows.Add(new EmailTaskResponse(reader.GetGuid(0).ToString("N"), reader.GetGuid(1).ToString("N"), reader.GetString(2), reader.GetString(3),
                    Shown(reader.GetString(4)), reader.IsDBNull(5) ? null : reader.GetString(5), reader.IsDBNull(6) ? null : reader.GetString(6),
                    reader.GetInt32(7), reader.IsDBNull(13) ? null : reader.GetString(13), reader.GetFieldValue<DateTimeOffset>(8), reader.IsDBNull(9) ? null : reader.GetFieldValue<DateTimeOffset>(9),
                    reader.IsDBNull(10) ? null : reader.GetFieldValue<DateTimeOffset>(10), reader.IsDBNull(11) ? null : reader.GetFieldValue<DateTimeOffset>(11),
                    JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(reader.GetString(12)) ?? [], []));
                if (!reader.IsDBNull(13))
                {
                    messageIds.Add((rows.Count - 1, reader.GetGuid(14), reader.GetString(15), reader.GetString(13)));
                }
            }
        }
        foreach (var (index, tenantId, emailKey, messageId) in messageIds)
        {
            rows[index] = rows[index] with { Events = await EventsAsync(conn, tenantId, emailKey, messageId, ct) };
        }
        return rows;
    }

    /// <summary>The task's processed ESP events, by its message id (Tencent's id or our Message-ID) and address.</summary>
    private static async Task<List<EmailTaskEvent>> EventsAsync(NpgsqlConnection conn, Guid tenantId, string emailKey, string messageId, CancellationToken ct)
    {
        var events = new List<EmailTaskEvent>();
        await using var cmd = Sql.Command(conn, """
            SELECT event_type, occurred_at, reason FROM email_events
            WHERE tenant_id = $1 AND email = $2 AND processed_at IS NOT NULL AND (message_id = $3 OR btrim(smtp_message_id, '<>') = $3)
            ORDER BY occurred_at, id
            """, tenantId, emailKey, messageId);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            if (EventName(reader.GetString(0)) is { } type)
            {
                events.Add(new EmailTaskEvent(type, reader.GetFieldValue<DateTimeOffset>(1), reader.IsDBNull(2) ? null : reader.GetString(2)));
            }
        }
        return events;
    }

    /// <summary>The seed-facing name of a stored event type; others (processed, deferred…) are not shown.</summary>
    private static string? EventName(string eventType) => eventType switch
    {
        "delivered" => "delivered",
        "open" => "opened",
        "click" => "clicked",
        "hard_bounce" or "soft_bounce" => "bounced",
        "spamreport" => "complained",
        _ => null,
    };

    /// <summary>A claimed task has not been attempted yet: it is still queued to the tenant.</summary>
    private static string Shown(string status) => status == S.Claimed ? S.Queued : status;

    /// <summary>VALIDATION_ERROR naming each bad field.</summary>
    private static IResult Invalid(IReadOnlyDictionary<string, string> fields) =>
        TransactionalErrors.ValidationError.Result(string.Join(" ", fields.Select(f => $"{f.Key}: {f.Value}")));

    /// <summary>Another tenant's task or request is answered exactly like one that does not exist.</summary>
    private static IResult NotFound(string what, string id) =>
        TransactionalErrors.NotFound.Result($"There is no {what} {(id.Length > 64 ? id[..64] : id)}.");

    private static bool TryId(string value, out Guid id)
    {
        var s = value.EndsWith(".json", StringComparison.Ordinal) ? value[..^5] : value;
        return Guid.TryParseExact(s, "N", out id) || Guid.TryParseExact(s, "D", out id);
    }
}
