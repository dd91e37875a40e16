using System.Buffers.Text;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using MimeKit;
using Newsletter.Contracts.Transactional;
using Newsletter.ServiceDefaults;
using Newsletter.ServiceDefaults.Mail;

namespace SendEngine.Features.Transactional;

/// <summary>What is wrong with a request: field errors (400 VALIDATION_ERROR) or a size limit (413).</summary>
internal sealed class EmailRequestProblems
{
    public Dictionary<string, string> Fields { get; } = new(StringComparer.Ordinal);

    /// <summary>Set when a size limit is exceeded (413), with the limit stated.</summary>
    public string? TooLarge { get; set; }

    public bool Ok => Fields.Count == 0 && TooLarge is null;

    public void Add(string field, string message) => Fields.TryAdd(field, message);
}

/// <summary>
/// The seed's rules for a POST /api/v1/email body, each bad field named by its JSON path (message.to[2].type). A
/// malformed recipient address is not an error of the request: that task is answered invalid.
/// </summary>
internal static partial class EmailRequestValidator
{
    public const string SendAtFormat = "yyyy-MM-dd HH:mm:ss";
    private const int MaxHeaders = 50;
    private const int MaxHeaderValue = 998;
    private const int MaxMetadataBytes = 4096;

    public static DateTimeOffset? Validate(SendEmailRequest request, TransactionalOptions o, DateTimeOffset now, EmailRequestProblems p)
    {
        var sendAt = ValidateSendAt(request.SendAt, o, now, p);
        if (request.Callback is { } cb)
        {
            if (!Uri.TryCreate(cb.Url, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https") || cb.Url!.Length > 2048)
            {
                p.Add("callback.url", "The callback url must be an absolute http(s) URL of at most 2048 characters.");
            }
            if (cb.Type is not ("request" or "recipient"))
            {
                p.Add("callback.type", "The callback type must be request or recipient.");
            }
        }
        var m = request.Message;
        if (m is null)
        {
            p.Add("message", "The message field is required.");
            return sendAt;
        }
        if (string.IsNullOrWhiteSpace(m.FromEmail))
        {
            p.Add("message.from_email", "The from_email field is required.");
        }
        else if (!EmailAddresses.TryNormalize(m.FromEmail, out _, out _, out var fromError))
        {
            p.Add("message.from_email", fromError);
        }
        Line(p, "message.from_name", m.FromName, 256);
        Line(p, "message.subject", m.Subject, 998);
        if (m.Html is null && m.Text is null)
        {
            p.Add("message.html", "The message needs html or text.");
        }
        if (m.To is null || m.To.Count == 0)
        {
            p.Add("message.to", "The to field needs at least one recipient.");
        }
        else if (m.To.Count > o.MaxRecipients)
        {
            p.Add("message.to", $"At most {o.MaxRecipients} recipients per request.");
        }
        else
        {
            for (var i = 0; i < m.To.Count; i++)
            {
                var r = m.To[i];
                if (r is null || string.IsNullOrWhiteSpace(r.Email))
                {
                    p.Add($"message.to[{i}].email", "The email field is required.");
                    continue;
                }
                Line(p, $"message.to[{i}].email", r.Email, 320);
                Line(p, $"message.to[{i}].name", r.Name, 256);
                if (r.Type is not (null or "to" or "cc" or "bcc"))
                {
                    p.Add($"message.to[{i}].type", "The type must be to, cc or bcc.");
                }
            }
        }
        if (m.Headers is { } headers)
        {
            if (headers.Count > MaxHeaders)
            {
                p.Add("message.headers", $"At most {MaxHeaders} headers.");
            }
            foreach (var (name, value) in headers)
            {
                if (!HeaderName().IsMatch(name))
                {
                    p.Add($"message.headers.{name}", "A header name is 1 to 76 printable ASCII characters without ':' or spaces.");
                }
                else if (value is null || value.Length > MaxHeaderValue || value.AsSpan().IndexOfAny('\r', '\n') >= 0 || value.Contains('\0'))
                {
                    p.Add($"message.headers.{name}", $"A header value is one line of at most {MaxHeaderValue} characters.");
                }
            }
        }
        if (m.BccAddress is { } bcc && !string.IsNullOrWhiteSpace(bcc) && !EmailAddresses.TryNormalize(bcc, out _, out _, out var bccError))
        {
            p.Add("message.bcc_address", bccError);
        }
        if (m.MergeLanguage is not (null or "mailchimp" or "handlebars"))
        {
            p.Add("message.merge_language", "The merge_language must be mailchimp or handlebars.");
        }
        else if (m.MergeLanguage == "handlebars" && m.Merge != false)
        {
            // A block left open or closed twice is the tenant's error now, not a message rendered wrong later.
            foreach (var (field, template) in new[] { ("message.subject", m.Subject), ("message.html", m.Html), ("message.text", m.Text) })
            {
                if (template is not null && Composition.HandlebarsTemplate.Check(template) is { } error)
                {
                    p.Add(field, error);
                }
            }
        }
        MergeVars(p, "message.global_merge_vars", m.GlobalMergeVars);
        for (var i = 0; i < (m.MergeVars?.Count ?? 0); i++)
        {
            var r = m.MergeVars![i];
            if (r is null || string.IsNullOrWhiteSpace(r.Rcpt))
            {
                p.Add($"message.merge_vars[{i}].rcpt", "The rcpt field is required.");
                continue;
            }
            MergeVars(p, $"message.merge_vars[{i}].vars", r.Vars);
        }
        Metadata(p, "message.metadata", m.Metadata);
        for (var i = 0; i < (m.RecipientMetadata?.Count ?? 0); i++)
        {
            var r = m.RecipientMetadata![i];
            if (r is null || string.IsNullOrWhiteSpace(r.Rcpt))
            {
                p.Add($"message.recipient_metadata[{i}].rcpt", "The rcpt field is required.");
                continue;
            }
            Metadata(p, $"message.recipient_metadata[{i}].values", r.Values);
        }
        var files = (m.Attachments?.Count ?? 0) + (m.Images?.Count ?? 0);
        if (files > o.MaxAttachments)
        {
            p.TooLarge = $"At most {o.MaxAttachments} attachments and images per message; this one has {files}.";
        }
        Files(p, "message.attachments", m.Attachments, images: false, o);
        Files(p, "message.images", m.Images, images: true, o);
        return sendAt;
    }

    private static DateTimeOffset? ValidateSendAt(string? value, TransactionalOptions o, DateTimeOffset now, EmailRequestProblems p)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return null;
        }
        if (!DateTime.TryParseExact(value.Trim(), SendAtFormat, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var at))
        {
            p.Add("send_at", $"The send_at must be \"YYYY-MM-DD HH:MM:SS\" in UTC, e.g. {now.UtcDateTime.ToString(SendAtFormat, CultureInfo.InvariantCulture)}.");
            return null;
        }
        var sendAt = new DateTimeOffset(at, TimeSpan.Zero);
        if (sendAt - now > o.MaxScheduleAhead)
        {
            p.Add("send_at", $"The send_at may be at most {o.MaxScheduleAhead.TotalDays:0} days ahead.");
            return null;
        }
        return sendAt;
    }

    private static void Line(EmailRequestProblems p, string field, string? value, int max)
    {
        if (value is null)
        {
            return;
        }
        if (value.Length > max)
        {
            p.Add(field, $"The {field} must be at most {max} characters.");
        }
        else if (value.AsSpan().IndexOfAny('\r', '\n') >= 0 || value.Contains('\0'))
        {
            p.Add(field, $"The {field} must be one line.");
        }
    }

    private static void MergeVars(EmailRequestProblems p, string field, IReadOnlyList<MergeVar>? vars)
    {
        for (var i = 0; i < (vars?.Count ?? 0); i++)
        {
            var name = vars![i]?.Name;
            if (string.IsNullOrEmpty(name))
            {
                p.Add($"{field}[{i}].name", "The name field is required.");
            }
            else if (name.StartsWith('_'))
            {
                p.Add($"{field}[{i}].name", "A merge variable name may not start with an underscore.");
            }
            else if (!MergeName().IsMatch(name))
            {
                p.Add($"{field}[{i}].name", "A merge variable name is letters, digits and underscores (at most 100).");
            }
            if (vars[i]?.Content is { } content && !StorableText.IsStorable(content))
            {
                p.Add($"{field}[{i}].content", StorableText.Problem);
            }
        }
    }

    private static void Metadata(EmailRequestProblems p, string field, IReadOnlyDictionary<string, JsonElement>? metadata)
    {
        if (metadata is null)
        {
            return;
        }
        foreach (var (key, value) in metadata)
        {
            if (!MetadataKey().IsMatch(key))
            {
                p.Add($"{field}.{key}", "A metadata key is 1 to 100 letters, digits, '_', '-' or '.'.");
            }
            else if (value.ValueKind is not (JsonValueKind.String or JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False or JsonValueKind.Null))
            {
                p.Add($"{field}.{key}", "A metadata value is a string, number or boolean.");
            }
            else if (!StorableText.IsStorable(value))
            {
                p.Add($"{field}.{key}", StorableText.Problem);
            }
        }
        if (JsonSerializer.SerializeToUtf8Bytes(metadata).Length > MaxMetadataBytes)
        {
            p.Add(field, $"The {field} must be at most {MaxMetadataBytes} bytes as JSON.");
        }
    }

    private static void Files(EmailRequestProblems p, string field, IReadOnlyList<EmailAttachment>? files, bool images, TransactionalOptions o)
    {
        for (var i = 0; i < (files?.Count ?? 0); i++)
        {
            var f = files![i];
            var at = $"{field}[{i}]";
            if (f is null)
            {
                p.Add(at, "An attachment needs type, name and content.");
                continue;
            }
            if (string.IsNullOrWhiteSpace(f.Type) || !ContentType.TryParse(f.Type, out var type) || type.MediaSubtype.Length == 0)
            {
                p.Add($"{at}.type", "The type must be a MIME type such as text/plain.");
            }
            else if (images && !type.MediaType.Equals("image", StringComparison.OrdinalIgnoreCase))
            {
                p.Add($"{at}.type", "An image's type must start with image/.");
            }
            if (string.IsNullOrWhiteSpace(f.Name))
            {
                p.Add($"{at}.name", "The name field is required.");
            }
            else if (images ? !ContentIdName().IsMatch(f.Name) : f.Name.Length > 255 || f.Name.AsSpan().IndexOfAny('\r', '\n') >= 0 || f.Name.Contains('\0'))
            {
                p.Add($"{at}.name", images
                    ? "An image name is its Content-ID (cid:NAME): 1 to 200 letters, digits and . _ - @ characters."
                    : "A file name is one line of at most 255 characters.");
            }
            if (string.IsNullOrEmpty(f.Content) || !Base64.IsValid(f.Content, out var decoded))
            {
                p.Add($"{at}.content", "The content must be base64.");
            }
            else if (decoded > o.MaxAttachmentBytes)
            {
                p.TooLarge ??= $"{at} is {decoded} bytes; at most {o.MaxAttachmentBytes} bytes per attachment or image.";
            }
        }
    }

    [GeneratedRegex(@"^[!-9;-~]{1,76}$")]
    private static partial Regex HeaderName();

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9_]{0,99}$")]
    private static partial Regex MergeName();

    [GeneratedRegex(@"^[A-Za-z0-9_.\-]{1,100}$")]
    private static partial Regex MetadataKey();

    [GeneratedRegex(@"^[A-Za-z0-9._@\-]{1,200}$")]
    private static partial Regex ContentIdName();
}
