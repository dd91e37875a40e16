using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using MemberCenter.Features.Retention;
using Microsoft.Extensions.DependencyInjection;
using Newsletter.Contracts;
using Newsletter.Contracts.ApiKeys;
using Newsletter.ServiceDefaults.OperationLog;
using Npgsql;

namespace MemberCenter.Tests;

/// <summary>Member Center's operation log: what a change through the tenant and admin APIs leaves, and who may read it.</summary>
[Collection(MemberCenterCollection.Name)]
public sealed class OperationLogTests(MemberCenterFixture mc)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_tenant_API_change_leaves_one_row_with_actor_action_target_and_no_key()
    {
        var tenant = await mc.CreateTenantAsync("Oplog tenant");
        using var api = tenant.Api();
        api.DefaultRequestHeaders.UserAgent.ParseAdd("oplog-test/1.0");
        var app = await MemberCenterFixture.ReadAsync<ApplicationResponse>(await api.PostAsJsonAsync("api/applications", new CreateApplicationRequest("Shop"), MemberCenterFixture.Json, Ct));
        var key = await MemberCenterFixture.ReadAsync<ApiKeySecretResponse>(
            await api.PostAsJsonAsync($"api/applications/{app.ApplicationId}/keys", new CreateApiKeyRequest("server"), MemberCenterFixture.Json, Ct));

        var rows = (await PageAsync(api, "action=createApiKey")).Items;
        var row = Assert.Single(rows);
        Assert.Equal(tenant.TenantId, row.TenantId);
        Assert.Equal(OperationLogActorKinds.Client, row.ActorKind);
        Assert.Equal(tenant.TenantClient.ClientId, row.ActorId);
        Assert.Equal("createApiKey", row.Action);
        Assert.Equal(new Dictionary<string, string?> { ["applicationId"] = app.ApplicationId }, row.Target);
        Assert.Equal("POST", row.Method);
        Assert.Equal($"/api/applications/{app.ApplicationId}/keys", row.Path);
        Assert.Equal(201, row.StatusCode);
        Assert.Equal(OperationLogOutcomes.Succeeded, row.Outcome);
        Assert.Equal("oplog-test/1.0", row.UserAgent);
        Assert.False(string.IsNullOrEmpty(row.ClientIp));
        Assert.Null(row.Before);
        // The snapshot keeps the key's id and prefix, never the key.
        Assert.Equal(key.KeyId, row.After!.Value.GetProperty("key_id").GetString());
        Assert.Equal(key.Prefix, row.After!.Value.GetProperty("prefix").GetString());
        Assert.False(row.After!.Value.TryGetProperty("api_key", out _));
        Assert.DoesNotContain(key.ApiKey, await RowTextAsync(row.Id));

        // The application's creation is its own row; reads (GET) leave none. (The admin API's rows that made the
        // tenant and its clients are the tenant's too, under the admin client.)
        await api.GetStringAsync($"api/applications/{app.ApplicationId}/keys", Ct);
        var mine = (await PageAsync(api, $"actor={tenant.TenantClient.ClientId}")).Items;
        Assert.Equal(["createApiKey", "createApplication"], mine.Select(r => r.Action));
        var byAdmin = (await PageAsync(api, $"actor={MemberCenterFixture.AdminClientId}")).Items;
        Assert.Equal(["createTenantClient", "createTenantClient", "createTenantList", "createTenant"], byAdmin.Select(r => r.Action));
    }

    [Fact]
    public async Task An_admin_API_change_is_recorded_for_the_tenant_it_concerns_without_the_rotated_secret()
    {
        var tenant = await mc.CreateTenantAsync("Oplog admin");
        using var admin = mc.Http(await mc.AdminTokenAsync());
        var rotated = await MemberCenterFixture.ReadAsync<ApiClientSecretResponse>(
            await admin.PostAsync($"admin/clients/{tenant.SendClient.ClientId}/rotate-secret", null, Ct));
        using (var disabled = await admin.PostAsync($"admin/clients/{tenant.SendClient.ClientId}/disable", null, Ct))
        {
            Assert.Equal(HttpStatusCode.NoContent, disabled.StatusCode);
        }

        using var api = tenant.Api();
        var rotation = Assert.Single((await PageAsync(api, "action=rotateClientSecret")).Items);
        Assert.Equal(tenant.TenantId, rotation.TenantId);
        Assert.Equal(OperationLogActorKinds.Client, rotation.ActorKind);
        Assert.Equal(MemberCenterFixture.AdminClientId, rotation.ActorId);
        Assert.Equal(new Dictionary<string, string?> { ["clientId"] = tenant.SendClient.ClientId }, rotation.Target);
        Assert.Equal(200, rotation.StatusCode);
        Assert.Equal(tenant.SendClient.ClientId, rotation.After!.Value.GetProperty("client_id").GetString());
        Assert.False(rotation.After!.Value.TryGetProperty("client_secret", out _));
        var text = await RowTextAsync(rotation.Id);
        Assert.DoesNotContain(rotated.ClientSecret, text);
        Assert.DoesNotContain(tenant.SendClient.ClientSecret, text);

        var disable = Assert.Single((await PageAsync(api, "action=disableClient")).Items);
        Assert.False(disable.Before!.Value.GetProperty("disabled").GetBoolean());
        Assert.True(disable.After!.Value.GetProperty("disabled").GetBoolean());
        Assert.Equal(204, disable.StatusCode);

        // The tenant's clients were made through the admin API too: the {tenantId} route value names the tenant, and
        // the created client's secret is not in its row.
        var created = (await PageAsync(api, "action=createTenantClient")).Items;
        Assert.Equal(2, created.Count);
        Assert.All(created, r => Assert.Equal(new Dictionary<string, string?> { ["tenantId"] = tenant.TenantId }, r.Target));
        foreach (var r in created)
        {
            var row = await RowTextAsync(r.Id);
            Assert.DoesNotContain(tenant.SendClient.ClientSecret, row);
            Assert.DoesNotContain(tenant.TenantClient.ClientSecret, row);
        }

        // The platform's view: every tenant, or one with tenant_id; a tenant token may not use it.
        var across = await admin.GetFromJsonAsync<OperationLogPage>($"admin/operation-log?tenant_id={tenant.TenantId}&limit=1000", MemberCenterFixture.Json, Ct);
        Assert.Contains(across!.Items, r => r.Id == rotation.Id);
        Assert.All(across.Items, r => Assert.Equal(tenant.TenantId, r.TenantId));
        using var refused = await api.GetAsync("admin/operation-log", Ct);
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
    }

    [Fact]
    public async Task A_refused_change_by_an_authenticated_caller_is_recorded_as_denied()
    {
        var tenant = await mc.CreateTenantAsync("Oplog denied");
        var readOnly = await mc.TokenAsync(tenant.TenantClient.ClientId, tenant.TenantClient.ClientSecret, Scopes.ListsRead + " " + Scopes.LogsRead);
        using var api = mc.Http(readOnly);
        using (var refused = await api.PostAsJsonAsync("api/lists", new CreateListRequest("Not allowed"), MemberCenterFixture.Json, Ct))
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        }
        // No token at all: nobody to record.
        using (var anonymous = await mc.Http().PostAsJsonAsync("api/lists", new CreateListRequest("Anonymous"), MemberCenterFixture.Json, Ct))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        }
        // Bad input changes nothing and is not recorded either.
        using (var bad = await tenant.Api().PostAsJsonAsync("api/lists", new CreateListRequest(""), MemberCenterFixture.Json, Ct))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        }

        var row = Assert.Single((await PageAsync(api, "action=createList")).Items);
        Assert.Equal(OperationLogOutcomes.Denied, row.Outcome);
        Assert.Equal(403, row.StatusCode);
        Assert.Equal(tenant.TenantClient.ClientId, row.ActorId);
        Assert.Equal(tenant.TenantId, row.TenantId);
        Assert.Null(row.After);
    }

    [Fact]
    public async Task Rows_cannot_be_updated_or_deleted_and_the_sweep_deletes_only_rows_past_retention()
    {
        var tenant = await mc.CreateTenantAsync("Oplog append-only");
        var tenantId = Guid.Parse(tenant.TenantId);
        var old = await InsertAsync(tenantId, "oldAction", TimeSpan.FromDays(401));
        var recent = await InsertAsync(tenantId, "recentAction", TimeSpan.FromDays(399));

        await using (var conn = new NpgsqlConnection(mc.ConnectionString))
        {
            await conn.OpenAsync(Ct);
            foreach (var sql in new[]
                     {
                         $"UPDATE operation_log SET action = 'forged' WHERE id = {recent}",
                         $"DELETE FROM operation_log WHERE id = {old}",
                         "TRUNCATE operation_log",
                     })
            {
                await using var cmd = new NpgsqlCommand(sql, conn);
                var ex = await Assert.ThrowsAsync<PostgresException>(() => cmd.ExecuteNonQueryAsync(Ct));
                Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, ex.SqlState);
            }
            // The sweep's setting lets through only rows older than the cutoff it names.
            await using var tx = await conn.BeginTransactionAsync(Ct);
            await using (var set = new NpgsqlCommand($"SET LOCAL {OperationLogSchema.SweepSetting} = '{DateTimeOffset.UtcNow.AddDays(-400):O}'", conn, tx))
            {
                await set.ExecuteNonQueryAsync(Ct);
            }
            await using var early = new NpgsqlCommand($"DELETE FROM operation_log WHERE id = {recent}", conn, tx);
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, (await Assert.ThrowsAsync<PostgresException>(() => early.ExecuteNonQueryAsync(Ct))).SqlState);
        }

        var result = await mc.Services.GetRequiredService<RetentionSweeper>().SweepAsync(Ct);
        Assert.True(result.OperationLog >= 1, $"swept {result.OperationLog}");
        using var api = tenant.Api();
        var left = (await PageAsync(api, "")).Items.Where(r => r.Action is "oldAction" or "recentAction").Select(r => r.Id);
        Assert.Equal([recent], left);
    }

    [Fact]
    public async Task Another_tenants_rows_are_invisible_and_filters_paging_and_export_work()
    {
        var tenant = await mc.CreateTenantAsync("Oplog reader");
        var other = await mc.CreateTenantAsync("Oplog other");
        using var api = tenant.Api();
        var start = DateTimeOffset.UtcNow.AddSeconds(-1);
        var lists = new List<MailingListResponse>();
        for (var i = 0; i < 3; i++)
        {
            lists.Add(await MemberCenterFixture.ReadAsync<MailingListResponse>(await api.PostAsJsonAsync("api/lists", new CreateListRequest($"List {i}"), MemberCenterFixture.Json, Ct)));
        }
        using (var otherApi = other.Api())
        {
            await MemberCenterFixture.ReadAsync<MailingListResponse>(await otherApi.PostAsJsonAsync("api/lists", new CreateListRequest("Theirs"), MemberCenterFixture.Json, Ct));
            var theirs = (await PageAsync(otherApi, "")).Items;
            Assert.All(theirs, r => Assert.Equal(other.TenantId, r.TenantId));
            var mine = (await PageAsync(api, "limit=1000")).Items.Select(r => r.Id).ToHashSet();
            Assert.DoesNotContain(theirs, r => mine.Contains(r.Id));
        }

        // Newest first, two per page, filtered by action and actor.
        var filter = $"action=createList&actor={tenant.TenantClient.ClientId}";
        var first = await PageAsync(api, filter + "&limit=2");
        Assert.Equal(2, first.Items.Count);
        Assert.NotNull(first.NextCursor);
        var second = await PageAsync(api, filter + $"&limit=2&after={first.NextCursor}");
        var pages = first.Items.Concat(second.Items).ToList();
        Assert.Equal(lists.Select(l => l.ListId).Reverse(), pages.Select(r => r.After!.Value.GetProperty("list_id").GetString()));
        Assert.True(pages.Zip(pages.Skip(1)).All(p => p.First.Id > p.Second.Id));
        Assert.Null(second.NextCursor);
        Assert.Empty((await PageAsync(api, "actor=someone-else")).Items);
        Assert.Empty((await PageAsync(api, $"action=createList&to={Uri.EscapeDataString(start.ToString("O"))}")).Items);
        Assert.Equal(3, (await PageAsync(api, $"action=createList&from={Uri.EscapeDataString(start.ToString("O"))}")).Items.Count);

        // Target: any route value (the admin route that made the tenant's list names the tenant).
        var byTarget = (await PageAsync(api, $"target={tenant.TenantId}")).Items;
        Assert.Contains(byTarget, r => r.Action == "createTenantList");
        Assert.DoesNotContain(byTarget, r => r.Action == "createList");

        foreach (var bad in new[] { "limit=0", "after=abc", "from=yesterday", "limit=1001" })
        {
            using var refused = await api.GetAsync("api/operation-log?" + bad, Ct);
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
            Assert.True(JsonDocument.Parse(await refused.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("errors")
                .TryGetProperty(bad.Split('=')[0], out _), bad);
        }

        using var csv = await api.GetAsync("api/operation-log/export?format=csv&action=createList", Ct);
        Assert.Equal(HttpStatusCode.OK, csv.StatusCode);
        Assert.Equal("text/csv", csv.Content.Headers.ContentType?.MediaType);
        Assert.Equal("attachment", csv.Content.Headers.ContentDisposition?.DispositionType);
        var lines = (await csv.Content.ReadAsStringAsync(Ct)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(string.Join(',', OperationLogApi.CsvHeader), lines[0].TrimEnd('\r'));
        Assert.Equal(3, lines.Length - 1);
        Assert.All(lines.Skip(1), l => Assert.Contains(",createList,", l, StringComparison.Ordinal));

        using var ndjson = await api.GetAsync("api/operation-log/export?format=ndjson", Ct);
        var entries = (await ndjson.Content.ReadAsStringAsync(Ct)).Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => JsonSerializer.Deserialize<OperationLogEntryResponse>(l, MemberCenterFixture.Json)!).ToList();
        Assert.True(entries.Count >= 3);
        Assert.All(entries, e => Assert.Equal(tenant.TenantId, e.TenantId));
        using var wrongFormat = await api.GetAsync("api/operation-log/export?format=xml", Ct);
        Assert.Equal(HttpStatusCode.BadRequest, wrongFormat.StatusCode);

        // Reading needs newsletter:logs.read.
        using var noScope = mc.Http(await mc.TokenAsync(tenant.TenantClient.ClientId, tenant.TenantClient.ClientSecret, Scopes.ListsRead));
        using var forbidden = await noScope.GetAsync("api/operation-log", Ct);
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
    }

    [Fact]
    public void The_redactor_drops_secrets_at_any_depth_and_keeps_ids()
    {
        var node = JsonNode.Parse("""
            {"client_id":"c","client_secret":"s1","password":"p","api_key":"k","key_id":"id1","prefix":"pk_ab",
             "endpoint":{"url":"u","secret":"whsec_x","signingKey":"sk"},"items":[{"access_token":"t","name":"n"}],"keys":[{"key_id":"id2"}]}
            """);
        var redacted = OperationLogRedactor.Redact(node)!.ToJsonString();
        Assert.Equal("""{"client_id":"c","key_id":"id1","prefix":"pk_ab","endpoint":{"url":"u"},"items":[{"name":"n"}],"keys":[{"key_id":"id2"}]}""", redacted);
    }

    private static async Task<OperationLogPage> PageAsync(HttpClient api, string query)
    {
        using var response = await api.GetAsync("api/operation-log?" + query, Ct);
        return await MemberCenterFixture.ReadAsync<OperationLogPage>(response);
    }

    private async Task<string> RowTextAsync(long id)
    {
        await using var conn = new NpgsqlConnection(mc.ConnectionString);
        await conn.OpenAsync(Ct);
        await using var cmd = new NpgsqlCommand($"SELECT row_to_json(o)::text FROM operation_log o WHERE id = {id}", conn);
        return (string)(await cmd.ExecuteScalarAsync(Ct))!;
    }

    private async Task<long> InsertAsync(Guid tenantId, string action, TimeSpan age)
    {
        await using var conn = new NpgsqlConnection(mc.ConnectionString);
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
