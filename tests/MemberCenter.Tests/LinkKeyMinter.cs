using System.Buffers.Text;
using System.Net.Http.Json;
using MemberCenter.Features.Subscriptions;
using Newsletter.Contracts;

namespace MemberCenter.Tests;

/// <summary>
/// Mints stateless unsubscribe links the way Send Engine does: one derived key from POST /internal/lists/{id}/link-key,
/// then the documented token format per subscriber (the recipients page carries no URL).
/// </summary>
public static class LinkKeyMinter
{
    public static async Task<Func<string, string>> MintAsync(HttpClient sendEngine, string tenantId, string listId, CancellationToken ct = default)
    {
        var key = await MemberCenterFixture.ReadAsync<LinkKeyResponse>(await sendEngine.PostAsJsonAsync($"internal/lists/{listId}/link-key",
            new LinkKeyRequest(tenantId), MemberCenterFixture.Json, ct));
        var bytes = Base64Url.DecodeFromChars(key.Key);
        var list = Guid.Parse(listId);
        return subscriberId => key.UnsubscribeUrlPrefix + UnsubscribeLinkToken.Format(key.KeyId, key.IssuedAt, list, Guid.Parse(subscriberId), bytes);
    }
}
