using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;
using Newsletter.ServiceDefaults;

namespace SendEngine.Features.Transactional;

/// <summary>
/// The JSON options of a request's message as stored (<c>transactional_requests.message</c>) and read back by the
/// dispatcher: the API's (snake_case), but HTML is not escaped (the column is never served to a browser: a 4 KB HTML
/// body written with <c>\u003C</c> for each <c>&lt;</c> was half again as long, and each escape cost the writer and the
/// reader), and strings are read without the storability check (what is stored passed it at the API).
/// </summary>
public sealed class TransactionalJson
{
    public TransactionalJson(IOptions<JsonOptions> json)
    {
        Api = json.Value.SerializerOptions;
        var stored = new JsonSerializerOptions(Api) { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        for (var i = stored.Converters.Count - 1; i >= 0; i--)
        {
            if (stored.Converters[i] is StorableStringConverter)
            {
                stored.Converters.RemoveAt(i);
            }
        }
        stored.MakeReadOnly(populateMissingResolver: true);
        Stored = stored;
    }

    /// <summary>The API's options (request bodies, answers).</summary>
    public JsonSerializerOptions Api { get; }

    /// <summary>The stored message's options.</summary>
    public JsonSerializerOptions Stored { get; }
}
