using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Newsletter.Contracts;
using Newsletter.Contracts.Webhooks;
using Newsletter.ServiceDefaults.OperationLog;
using Npgsql;
using SendEngine.Features.Retention;

namespace SendEngine.Tests;

/// <summary>Send Engine's operation log: changes through its tenant and admin APIs, read with newsletter:logs.read.</summary>
public sealed class OperationLogTests(StackFixture stack)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    // An IP literal on the public internet: accepted without DNS, never called (nothing is sent for this tenant).
    private const string HookUrl = "https://93.184.215.14/hook";

    [Fact]
    public async Task A_person_changing_suppressions_is_recorded_with_their_name_and_the_address_masked()
    {
        var tenant = await stack.CreateTenantAsync("Oplog person");
        var forge = new TokenForge(stack);
        var key = await forge.MemberCenterKeyAsync();
        var userId = Guid.NewGuid().ToString();
        var person = forge.Mint(key, tenant.TenantId, Scopes.SendWrite + " " + Scopes.SendRead + " " + Scopes.LogsRead, tweak: d =>
        {
            d.Claims["sub"] = userId;
            d.Claims[ClaimNames.ClientId] = "console";
            d.Claims["email"] = "ann@tenant.example";
        });
        using var se = stack.SendEngineClient(person);
        var email = $"gone-{Guid.NewGuid():N}@example.com";
        await StackFixture.PostAsync<SuppressionResponse>(se, "api/suppressions", new AddSuppressionRequest(null, email, "manual"));
        using (var removed = await se.DeleteAsync($"api/suppressions/{Uri.EscapeDataString(email)}", Ct))
        {
            Assert.Equal(HttpStatusCode.NoContent, removed.StatusCode);
        }

        var rows = (await PageAsync(se, "")).Items;
        Assert.Equal(["removeSuppression", "addSuppression"], rows.Select(r => r.Action));
        Assert.All(rows, r =>
        {
            Assert.Equal(OperationLogActorKinds.Person, r.ActorKind);
            Assert.Equal(userId, r.ActorId);
            Assert.Equal("ann@tenant.example", r.ActorDisplay);
            Assert.Equal(tenant.TenantId, r.TenantId);
            Assert.Equal(OperationLogOutcomes.Succeeded, r.Outcome);
        });
        var (remove, add) = (rows[0], rows[1]);
        Assert.Equal(201, add.StatusCode);
        Assert.Equal("manual", add.After!.Value.GetProperty("reason").GetString());
        Assert.Equal(204, remove.StatusCode);
        Assert.Equal("/api/suppressions/{email}", remove.Path);
        Assert.Equal(new Dictionary<string, string?> { ["email"] = "{email}" }, remove.Target);
        Assert.Equal("manual", remove.Before!.Value.GetProperty("reason").GetString());
        Assert.Null(remove.After);
        foreach (var r in rows)
        {
            Assert.DoesNotContain(email.Split('@')[0], await RowTextAsync(r.Id));
        }
    }

    [Fact]
    public async Task Tenant_and_admin_webhook_changes_are_recorded_without_their_secrets_and_refusals_as_denied()
    {
        var tenant = await stack.CreateTenantAsync("Oplog webhooks");
        using var se = stack.SendEngineClient(await stack.SendTokenAsync(tenant, Scopes.Webhooks + " " + Scopes.SendRead));
        var created = await StackFixture.PostAsync<WebhookEndpointSecretResponse>(se, "api/webhook-endpoints",
            new CreateWebhookEndpointRequest(HookUrl, ["sent"], "oplog"));
        var endpointId = created.Endpoint.EndpointId;
        var rotated = await StackFixture.PostAsync<WebhookEndpointSecretResponse>(se, $"api/webhook-endpoints/{endpointId}/rotate-secret", new { });
        using (var patched = await se.PatchAsJsonAsync($"api/webhook-endpoints/{endpointId}",
                   new UpdateWebhookEndpointRequest(null, null, "changed", null), StackFixture.Json, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, patched.StatusCode);
        }
        // send.read only: adding a suppression is refused, and recorded as denied.
        using (var refused = await se.PostAsJsonAsync("api/suppressions", new AddSuppressionRequest(null, "x@example.com", null), StackFixture.Json, Ct))
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        }
        using var admin = stack.SendEngineClient(await stack.TokenAsync(stack.AdminClientId, stack.AdminClientSecret));
        var byAdmin = await StackFixture.PostAsync<WebhookEndpointSecretResponse>(admin, $"admin/tenants/{tenant.TenantId}/webhook-endpoints",
            new CreateWebhookEndpointRequest(HookUrl, ["delivered"], "by admin"));

        using var reader = stack.SendEngineClient(await LogsTokenAsync(tenant.TenantId));
        var rows = (await PageAsync(reader, "")).Items;
        Assert.Equal(["adminCreateWebhookEndpoint", "addSuppression", "updateWebhookEndpoint", "rotateWebhookEndpointSecret", "createWebhookEndpoint"],
            rows.Select(r => r.Action));

        var create = rows[4];
        Assert.Equal(OperationLogActorKinds.Client, create.ActorKind);
        Assert.Equal(tenant.SendClientId, create.ActorId);
        Assert.Null(create.Target);
        Assert.Equal(endpointId, create.After!.Value.GetProperty("endpoint").GetProperty("endpoint_id").GetString());
        Assert.False(create.After!.Value.TryGetProperty("secret", out _));
        Assert.Equal(new Dictionary<string, string?> { ["endpointId"] = endpointId }, rows[3].Target);
        Assert.Equal("oplog", rows[2].Before!.Value.GetProperty("description").GetString());
        Assert.Equal("changed", rows[2].After!.Value.GetProperty("description").GetString());
        Assert.Equal(OperationLogOutcomes.Denied, rows[1].Outcome);
        Assert.Equal(403, rows[1].StatusCode);
        Assert.Equal(tenant.SendClientId, rows[1].ActorId);

        var adminRow = rows[0];
        Assert.Equal(stack.AdminClientId, adminRow.ActorId);
        Assert.Equal(tenant.TenantId, adminRow.TenantId);
        Assert.Equal(new Dictionary<string, string?> { ["tenant_id"] = tenant.TenantId }, adminRow.Target);
        Assert.Equal(201, adminRow.StatusCode);

        foreach (var r in rows)
        {
            var text = await RowTextAsync(r.Id);
            Assert.DoesNotContain(created.Secret, text);
            Assert.DoesNotContain(rotated.Secret, text);
            Assert.DoesNotContain(byAdmin.Secret, text);
            Assert.DoesNotContain(created.Secret["whsec_".Length..], text);
        }

        // The platform's view across tenants, and another tenant's token sees none of these rows.
        var across = await admin.GetFromJsonAsync<OperationLogPage>($"admin/operation-log?tenant_id={tenant.TenantId}", StackFixture.Json, Ct);
        Assert.Equal(rows.Select(r => r.Id), across!.Items.Select(r => r.Id));
        var other = await stack.CreateTenantAsync("Oplog stranger");
        using var stranger = stack.SendEngineClient(await LogsTokenAsync(other.TenantId));
        var theirs = (await PageAsync(stranger, "limit=1000")).Items;
        Assert.DoesNotContain(theirs, r => rows.Any(m => m.Id == r.Id));
        Assert.Empty((await PageAsync(stranger, $"target={endpointId}")).Items);
        Assert.Single((await PageAsync(reader, $"target={endpointId}&action=rotateWebhookEndpointSecret")).Items);
        // A send_api token has no newsletter:logs.read.
        using var noScope = await se.GetAsync("api/operation-log", Ct);
        Assert.Equal(HttpStatusCode.Forbidden, noScope.StatusCode);
    }

    [Fact]
    public async Task Rows_are_append_only_swept_after_retention_paged_and_exported()
    {
        var tenant = await stack.CreateTenantAsync("Oplog sweep");
        var tenantId = Guid.Parse(tenant.TenantId);
        var old = await InsertAsync(tenantId, "oldAction", TimeSpan.FromDays(401));
        var kept = new List<long>();
        for (var i = 0; i < 3; i++)
        {
            kept.Add(await InsertAsync(tenantId, "recentAction", TimeSpan.FromDays(10 + i)));
        }

        await using (var conn = new NpgsqlConnection(stack.SendEngineConnectionString))
        {
            await conn.OpenAsync(Ct);
            foreach (var sql in new[] { $"UPDATE operation_log SET status_code = 500 WHERE id = {old}", $"DELETE FROM operation_log WHERE id = {old}" })
            {
                await using var cmd = new NpgsqlCommand(sql, conn);
                Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, (await Assert.ThrowsAsync<PostgresException>(() => cmd.ExecuteNonQueryAsync(Ct))).SqlState);
            }
        }
        var result = await stack.SendEngine.Services.GetRequiredService<RetentionSweeper>().SweepAsync(Ct);
        Assert.True(result.OperationLog >= 1, $"swept {result.OperationLog}");

        using var reader = stack.SendEngineClient(await LogsTokenAsync(tenant.TenantId));
        var first = await PageAsync(reader, "limit=2");
        var second = await PageAsync(reader, $"limit=2&after={first.NextCursor}");
        Assert.Null(second.NextCursor);
        // Newest first by id: the rows were inserted oldest-age last.
        Assert.Equal(kept.AsEnumerable().Reverse(), first.Items.Concat(second.Items).Select(r => r.Id));

        using var csv = await reader.GetAsync("api/operation-log/export", Ct);
        Assert.Equal(HttpStatusCode.OK, csv.StatusCode);
        Assert.Equal("text/csv", csv.Content.Headers.ContentType?.MediaType);
        Assert.Equal("operation-log.csv", csv.Content.Headers.ContentDisposition?.FileName?.Trim('"'));
        var lines = (await csv.Content.ReadAsStringAsync(Ct)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("id,occurred_at,tenant_id,actor_kind,actor_id,actor_display,action,", lines[0], StringComparison.Ordinal);
        Assert.Equal(3, lines.Length - 1);
        Assert.All(lines.Skip(1), l => Assert.Contains(",recentAction,", l, StringComparison.Ordinal));
    }

    private async Task<string> LogsTokenAsync(string tenantId)
    {
        var forge = new TokenForge(stack);
        return forge.Mint(await forge.MemberCenterKeyAsync(), tenantId, Scopes.LogsRead);
    }

    private static async Task<OperationLogPage> PageAsync(HttpClient api, string query) =>
        await StackFixture.ReadAsync<OperationLogPage>(await api.GetAsync("api/operation-log?" + query, Ct), HttpStatusCode.OK);

    private async Task<string> RowTextAsync(long id)
    {
        await using var conn = new NpgsqlConnection(stack.SendEngineConnectionString);
        await conn.OpenAsync(Ct);
        await using var cmd = new NpgsqlCommand($"SELECT row_to_json(o)::text FROM operation_log o WHERE id = {id}", conn);
        return (string)(await cmd.ExecuteScalarAsync(Ct))!;
    }

    private async Task<long> InsertAsync(Guid tenantId, string action, TimeSpan age)
    {
        await using var conn = new NpgsqlConnection(stack.SendEngineConnectionString);
        await conn.OpenAsync(Ct);
        await using var cmd = new NpgsqlCommand("""
            INSERT INTO operation_log (occurred_at, tenant_id, actor_kind, actor_id, action, method, path, status_code, outcome)
            VALUES (now() - $1, $2, 'client', 'seeded', $3, 'POST', '/api/seeded', 200, 'succeeded') RETURNING id
            """, conn);
        cmd.Parameters.Add(new NpgsqlParameter { Value = age });
        cmd.Parameters.Add(new NpgsqlParameter { Value = tenantId });
        cmd.Parameters.Add(new NpgsqlParameter { Value = action });
        return (long)(await cmd.ExecuteScalarAsync(Ct))!;
    }
}
