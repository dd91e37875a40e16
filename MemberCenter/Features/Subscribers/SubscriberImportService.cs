using System.Text;
using System.Text.Json;
using MemberCenter.Features.Subscriptions;
using Microsoft.Extensions.Options;
using Newsletter.Contracts;
using Newsletter.ServiceDefaults;
using Newsletter.ServiceDefaults.Background;
using Npgsql;
using NpgsqlTypes;

namespace MemberCenter.Features.Subscribers;

public enum StageFailure { None, TooLarge, BadHeader }

public sealed record StageResult(Guid ImportId, StageFailure Failure, string? Detail);

/// <summary>Stages an uploaded CSV durably (POST /api/lists/{list_id}/imports) for <see cref="SubscriberImportProcessor"/>.</summary>
public sealed class SubscriberImportService(
    NpgsqlDataSource dataSource,
    IOptions<ImportOptions> options,
    WakeSignal<SubscriberImportProcessor> signal,
    TimeProvider clock)
{
    public const int InvalidLinesKept = 100;

    internal static readonly JsonSerializerOptions SnakeCase = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>
    /// Reads the body as it arrives and writes its valid rows with COPY, all in one transaction: an upload that fails
    /// (too large, cut off, a bad header) leaves nothing behind, and one that commits is staged whole before any row is
    /// applied. Invalid lines are counted (the first <see cref="InvalidLinesKept"/> with their reasons), never staged.
    /// </summary>
    public async Task<StageResult> StageAsync(Guid tenantId, Guid listId, string mode, string? consentNote, string? createdBy, RequestOrigin origin,
        Stream body, CancellationToken ct, IReadOnlyList<PreferenceField>? fields = null)
    {
        fields ??= [];
        var o = options.Value;
        var importId = Guid.CreateVersion7();
        var now = clock.GetUtcNow();
        await using var conn = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        await using (var insert = new NpgsqlCommand("""
            INSERT INTO subscriber_imports (id, tenant_id, list_id, mode, consent_note, status, total_rows, processed, created, updated, skipped,
                invalid, invalid_lines, created_by, ip_address, user_agent, created_at, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, 0, 0, 0, 0, 0, 0, '[]', $7, $8, $9, $10, $10)
            """, conn, tx))
        {
            insert.Parameters.Add(new NpgsqlParameter { Value = importId });
            insert.Parameters.Add(new NpgsqlParameter { Value = tenantId });
            insert.Parameters.Add(new NpgsqlParameter { Value = listId });
            insert.Parameters.Add(new NpgsqlParameter { Value = mode });
            insert.Parameters.Add(new NpgsqlParameter { Value = (object?)consentNote ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
            insert.Parameters.Add(new NpgsqlParameter { Value = ImportStatuses.Queued });
            insert.Parameters.Add(new NpgsqlParameter { Value = (object?)createdBy ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
            insert.Parameters.Add(new NpgsqlParameter { Value = (object?)origin.IpAddress ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
            insert.Parameters.Add(new NpgsqlParameter { Value = (object?)origin.UserAgent ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
            insert.Parameters.Add(new NpgsqlParameter { Value = now });
            await insert.ExecuteNonQueryAsync(ct);
        }

        var counted = new LimitedStream(body, o.MaxBytes);
        using var text = new StreamReader(counted, new UTF8Encoding(false, throwOnInvalidBytes: false), detectEncodingFromByteOrderMarks: true);
        var csv = new CsvRecordReader(text);
        int total = 0, invalid = 0;
        var errors = new List<ImportLineError>();
        try
        {
            var header = await csv.ReadAsync(ct);
            var (columns, emailIndex, headerError) = ParseHeader(header, fields);
            if (headerError is not null)
            {
                return new StageResult(importId, StageFailure.BadHeader, headerError);
            }
            await using (var copy = await conn.BeginBinaryImportAsync(
                "COPY subscriber_import_rows (import_id, line, email, email_key, preferences) FROM STDIN (FORMAT BINARY)", ct))
            {
                while (await csv.ReadAsync(ct) is { } record)
                {
                    if (record.IsBlank)
                    {
                        continue;
                    }
                    if (++total > o.MaxRows)
                    {
                        return new StageResult(importId, StageFailure.TooLarge, $"The file has more than {o.MaxRows} rows.");
                    }
                    var (error, field) = Validate(record, columns, emailIndex, fields, out var email, out var preferences);
                    if (error is not null)
                    {
                        invalid++;
                        if (errors.Count < InvalidLinesKept)
                        {
                            errors.Add(new ImportLineError(record.Line, error, field));
                        }
                        continue;
                    }
                    await copy.StartRowAsync(ct);
                    await copy.WriteAsync(importId, NpgsqlDbType.Uuid, ct);
                    await copy.WriteAsync(record.Line, NpgsqlDbType.Integer, ct);
                    await copy.WriteAsync(email.Value, NpgsqlDbType.Text, ct);
                    await copy.WriteAsync(email.Key, NpgsqlDbType.Text, ct);
                    if (preferences is null)
                    {
                        await copy.WriteNullAsync(ct);
                    }
                    else
                    {
                        await copy.WriteAsync(preferences, NpgsqlDbType.Jsonb, ct);
                    }
                }
                await copy.CompleteAsync(ct);
            }
        }
        catch (BodyTooLargeException)
        {
            return new StageResult(importId, StageFailure.TooLarge, $"The file is larger than {o.MaxBytes} bytes.");
        }

        await using (var update = new NpgsqlCommand(
            "UPDATE subscriber_imports SET total_rows = $2, invalid = $3, processed = $3, invalid_lines = $4::jsonb WHERE id = $1", conn, tx))
        {
            update.Parameters.Add(new NpgsqlParameter { Value = importId });
            update.Parameters.Add(new NpgsqlParameter { Value = total });
            update.Parameters.Add(new NpgsqlParameter { Value = invalid });
            update.Parameters.Add(new NpgsqlParameter { Value = JsonSerializer.Serialize(errors, SnakeCase), NpgsqlDbType = NpgsqlDbType.Text });
            await update.ExecuteNonQueryAsync(ct);
        }
        await tx.CommitAsync(ct);
        signal.Notify();
        return new StageResult(importId, StageFailure.None, null);
    }

    private static (string[] Columns, int EmailIndex, string? Error) ParseHeader(CsvRecord? header, IReadOnlyList<PreferenceField> fields)
    {
        if (header is null || header.IsBlank)
        {
            return ([], -1, "The file is empty: its first line must be a header with an email column.");
        }
        if (header.Error is not null)
        {
            return ([], -1, $"The header line is not valid CSV: {header.Error}");
        }
        var columns = header.Fields.Select(f => f.Trim()).ToArray();
        var emailIndex = Array.FindIndex(columns, c => c.Equals("email", StringComparison.OrdinalIgnoreCase));
        if (emailIndex < 0)
        {
            return ([], -1, "The header must have an email column.");
        }
        var preferenceColumns = columns.Where((_, i) => i != emailIndex).ToArray();
        if (preferenceColumns.Length > SubscriptionService.MaxPreferenceKeys)
        {
            return ([], -1, $"At most {SubscriptionService.MaxPreferenceKeys} preference columns are allowed.");
        }
        if (preferenceColumns.Any(c => c.Length is 0 or > 64 || !StorableText.IsStorable(c)))
        {
            return ([], -1, "Preference column names must be 1 to 64 characters.");
        }
        if (columns.Distinct(StringComparer.Ordinal).Count() != columns.Length)
        {
            return ([], -1, "Column names must be unique.");
        }
        // A list with preference fields takes only its fields (and lang), as the subscribe API does: a column that is
        // none of them is a mistake in the file, not in a row.
        if (fields.Count > 0 && preferenceColumns.FirstOrDefault(c => c != Reader.ReaderSettingsValidation.LanguageKey
                && !fields.Any(f => f.Key == c)) is { } unknown)
        {
            return ([], -1, $"The list has no preference field '{unknown}' (its fields: {string.Join(", ", fields.Select(f => f.Key))}, lang).");
        }
        return (columns, emailIndex, null);
    }

    /// <summary>Why the line is invalid and the column at fault (a preference field), or (null, null) with its address and preferences.</summary>
    private static (string? Error, string? Field) Validate(CsvRecord record, string[] columns, int emailIndex, IReadOnlyList<PreferenceField> fields,
        out EmailAddress email, out string? preferences)
    {
        email = default;
        preferences = null;
        if (record.Error is not null)
        {
            return (record.Error, null);
        }
        if (record.Fields.Count > columns.Length)
        {
            return ($"The line has {record.Fields.Count} fields; the header has {columns.Length}.", null);
        }
        var value = emailIndex < record.Fields.Count ? record.Fields[emailIndex] : null;
        if (!EmailAddress.TryParse(value, out email, out var error))
        {
            return (error, "email");
        }
        Dictionary<string, object>? prefs = null;
        for (var i = 0; i < record.Fields.Count; i++)
        {
            if (i == emailIndex || record.Fields[i].Length == 0)
            {
                continue;
            }
            if (!StorableText.IsStorable(record.Fields[i]))
            {
                return ($"The {columns[i]} value contains a NUL character or an unpaired surrogate.", columns[i]);
            }
            object? typed = record.Fields[i];
            string? fieldError = null;
            if (fields.Count > 0)
            {
                (typed, fieldError) = ImportPreferences.Convert(fields, columns[i], record.Fields[i]);
            }
            if (fieldError is not null)
            {
                return (fieldError, columns[i]);
            }
            (prefs ??= new Dictionary<string, object>(StringComparer.Ordinal))[columns[i]] = typed!;
        }
        // A subscribe must give every required field (as POST /newsletter/subscribe demands).
        if (fields.FirstOrDefault(f => f.Required && prefs?.ContainsKey(f.Key!) != true) is { } missing)
        {
            return ($"The field '{missing.Key}' is required.", missing.Key);
        }
        if (prefs is not null)
        {
            preferences = JsonSerializer.Serialize(prefs);
            if (Encoding.UTF8.GetByteCount(preferences) > SubscriptionService.MaxPreferencesBytes)
            {
                return ($"The preferences of the line are larger than {SubscriptionService.MaxPreferencesBytes} bytes.", null);
            }
        }
        return (null, null);
    }

    private sealed class BodyTooLargeException : Exception;

    /// <summary>Reads through to the request body and throws once more than the limit has arrived.</summary>
    private sealed class LimitedStream(Stream inner, long limit) : Stream
    {
        private long _read;

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
        {
            var n = await inner.ReadAsync(buffer, ct);
            _read += n;
            return _read > limit ? throw new BodyTooLargeException() : n;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) =>
            ReadAsync(buffer.AsMemory(offset, count), ct).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("Read asynchronously.");
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _read; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
