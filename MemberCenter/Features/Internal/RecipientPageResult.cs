using System.Reflection;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.Extensions.Options;
using Newsletter.Contracts;

namespace MemberCenter.Features.Internal;

/// <summary>One subscriber of a recipients page as read: its preferences are the stored jsonb text.</summary>
internal sealed record RecipientRow(Guid SubscriberId, string Email, string Preferences);

/// <summary>
/// A recipients page (<see cref="RecipientPage"/> on the wire, documented as such) written straight from the rows:
/// each subscriber's preferences go out as the jsonb text PostgreSQL returned, not parsed into a dictionary and
/// serialised again (a bulk job's snapshot reads every subscriber of the list once, so that round trip was most of
/// the route's own CPU per recipient).
/// </summary>
internal sealed class RecipientPageResult(string tenantId, string listId, List<RecipientRow> rows, string? nextCursor, string? changesCursor)
    : IResult, IEndpointMetadataProvider
{
    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var options = httpContext.RequestServices.GetRequiredService<IOptions<JsonOptions>>().Value.SerializerOptions;
        var response = httpContext.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/json; charset=utf-8";
        await using (var json = new Utf8JsonWriter(response.BodyWriter, new JsonWriterOptions { Encoder = options.Encoder, SkipValidation = true }))
        {
            json.WriteStartObject();
            json.WriteString("tenant_id"u8, tenantId);
            json.WriteString("list_id"u8, listId);
            json.WriteStartArray("items"u8);
            foreach (var row in rows)
            {
                json.WriteStartObject();
                json.WriteString("subscriber_id"u8, row.SubscriberId);
                json.WriteString("email"u8, row.Email);
                json.WritePropertyName("preferences"u8);
                // PostgreSQL's jsonb output is valid JSON: written as it is (an empty value would not be, so "{}").
                json.WriteRawValue(string.IsNullOrEmpty(row.Preferences) ? "{}" : row.Preferences, skipInputValidation: true);
                json.WriteEndObject();
                if (json.BytesPending > 16 * 1024)
                {
                    await json.FlushAsync(httpContext.RequestAborted);
                }
            }
            json.WriteEndArray();
            json.WriteString("next_cursor"u8, nextCursor);
            json.WriteString("changes_cursor"u8, changesCursor);
            json.WriteEndObject();
        }
        await response.BodyWriter.FlushAsync(httpContext.RequestAborted);
    }

    /// <summary>Documents the 200 as the contract's <see cref="RecipientPage"/>, as <c>Ok&lt;RecipientPage&gt;</c> did.</summary>
    public static void PopulateMetadata(MethodInfo method, EndpointBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Metadata.Add(new ProducesResponseTypeMetadata(StatusCodes.Status200OK, typeof(RecipientPage), ["application/json"]));
    }
}
