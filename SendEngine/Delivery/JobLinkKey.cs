using System.Net;
using SendEngine.Composition;
using SendEngine.Features.MemberCenter;

namespace SendEngine.Delivery;

/// <summary>
/// The minter of a job's unsubscribe links: the key Member Center derives for (tenant, list, key id, issued_at), fetched
/// per run and never stored. The first run records which key (key id and issued_at) on the job, so every run and every
/// process mints the same links; a key Member Center has retired (410) is replaced by a fresh one.
/// </summary>
internal static class JobLinkKey
{
    public static async Task<UnsubscribeLinks> OpenAsync(RecipientStore store, MemberCenterClient memberCenter, DeliveryJob job, CancellationToken ct)
    {
        var replace = false;
        if (job.LinkKeyId is { } recordedKey && job.LinksIssuedAt is { } recordedAt)
        {
            try
            {
                return new UnsubscribeLinks(await memberCenter.GetLinkKeyAsync(job.TenantId, job.ListId, recordedKey, recordedAt, ct));
            }
            catch (MemberCenterException ex) when (ex.Status == HttpStatusCode.Gone)
            {
                replace = true;
            }
        }
        var fresh = await memberCenter.GetLinkKeyAsync(job.TenantId, job.ListId, null, null, ct);
        var (keyId, issuedAt) = await store.SetLinkKeyAsync(job.Id, fresh.KeyId, DateTimeOffset.FromUnixTimeSeconds(fresh.IssuedAt), replace, ct);
        return keyId == fresh.KeyId && issuedAt.ToUnixTimeSeconds() == fresh.IssuedAt
            ? new UnsubscribeLinks(fresh)
            // Another runner of the job recorded its key first: mint with that one.
            : new UnsubscribeLinks(await memberCenter.GetLinkKeyAsync(job.TenantId, job.ListId, keyId, issuedAt, ct));
    }
}
