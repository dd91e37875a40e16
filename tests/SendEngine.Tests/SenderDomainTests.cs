using System.Net;
using System.Net.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Newsletter.Contracts.SenderDomains;
using SendEngine.Features.SenderDomains;

namespace SendEngine.Tests;

public sealed class SenderDomainTests(StackFixture stack)
{
    private async Task<bool> IsRegisteredAsync(string tenantId, string fromEmail)
    {
        await using var scope = stack.SendEngine.Services.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<SenderDomainStore>().IsRegisteredAsync(Guid.Parse(tenantId), fromEmail, CancellationToken.None);
    }

    [Fact]
    public async Task A_tenant_registers_lists_and_removes_its_sender_domains()
    {
        var tenant = await stack.CreateTenantAsync();
        using var se = stack.SendEngineClient(await stack.SendTokenAsync(tenant));
        var unique = StackFixture.UniqueDomain();

        using (var created = await se.PostAsJsonAsync("api/sender-domains", new AddSenderDomainRequest(" Mail." + unique.ToUpperInvariant() + ". "), StackFixture.Json))
        {
            var domain = await StackFixture.ReadAsync<SenderDomainResponse>(created, HttpStatusCode.Created);
            Assert.Equal(("mail." + unique, tenant.TenantId, SenderDomainStatuses.Unverified), (domain.Domain, domain.TenantId, domain.Status));
        }
        using (var again = await se.PostAsJsonAsync("api/sender-domains", new AddSenderDomainRequest("mail." + unique), StackFixture.Json))
        {
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        }
        // An internationalised domain is stored and matched in punycode.
        var idn = await StackFixture.PostAsync<SenderDomainResponse>(se, "api/sender-domains", new AddSenderDomainRequest("Bücher-" + unique));
        Assert.StartsWith("xn--", idn.Domain);
        Assert.Equal(new System.Globalization.IdnMapping().GetAscii("bücher-" + unique), idn.Domain);

        var listed = await se.GetFromJsonAsync<List<SenderDomainResponse>>("api/sender-domains", StackFixture.Json);
        Assert.Equal(new[] { "mail." + unique, idn.Domain }.Order(StringComparer.Ordinal), listed!.Select(d => d.Domain));

        Assert.True(await IsRegisteredAsync(tenant.TenantId, "Receipts@MAIL." + unique.ToUpperInvariant()));
        Assert.True(await IsRegisteredAsync(tenant.TenantId, "info@bücher-" + unique));
        Assert.False(await IsRegisteredAsync(tenant.TenantId, "info@" + unique), "the parent of a registered subdomain is not registered");
        Assert.False(await IsRegisteredAsync(tenant.TenantId, "info@x.mail." + unique), "a subdomain is registered on its own");
        Assert.False(await IsRegisteredAsync(tenant.TenantId, "not an address"));

        using (var removed = await se.DeleteAsync("api/sender-domains/MAIL." + unique))
        {
            Assert.Equal(HttpStatusCode.NoContent, removed.StatusCode);
        }
        Assert.False(await IsRegisteredAsync(tenant.TenantId, "receipts@mail." + unique));
        using (var gone = await se.DeleteAsync("api/sender-domains/mail." + unique))
        {
            Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        }

        foreach (var bad in new[] { "", "localhost", "exa mple.com", "-bad.example", "a..example" })
        {
            using var refused = await se.PostAsJsonAsync("api/sender-domains", new AddSenderDomainRequest(bad), StackFixture.Json);
            Assert.True(refused.StatusCode == HttpStatusCode.BadRequest, $"{bad}: {(int)refused.StatusCode}");
            Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        }
    }

    [Fact]
    public async Task Sender_domains_are_per_tenant_and_the_admin_manages_any_tenants()
    {
        var owner = await stack.CreateTenantAsync();
        var other = await stack.CreateTenantAsync();
        var domain = StackFixture.UniqueDomain();
        using var admin = stack.SendEngineClient(await stack.TokenAsync(stack.AdminClientId, stack.AdminClientSecret));
        var created = await StackFixture.PostAsync<SenderDomainResponse>(admin, $"admin/tenants/{owner.TenantId}/sender-domains", new AddSenderDomainRequest(domain));
        Assert.Equal(owner.TenantId, created.TenantId);
        var adminListed = await admin.GetFromJsonAsync<List<SenderDomainResponse>>($"admin/tenants/{owner.TenantId}/sender-domains", StackFixture.Json);
        Assert.Equal([domain], adminListed!.Select(d => d.Domain));

        // The owner sees it; the other tenant neither sees it, nor can remove it, nor send from it.
        using var ownerSe = stack.SendEngineClient(await stack.SendTokenAsync(owner));
        Assert.Equal([domain], (await ownerSe.GetFromJsonAsync<List<SenderDomainResponse>>("api/sender-domains", StackFixture.Json))!.Select(d => d.Domain));
        using var otherSe = stack.SendEngineClient(await stack.SendTokenAsync(other));
        Assert.Empty((await otherSe.GetFromJsonAsync<List<SenderDomainResponse>>("api/sender-domains", StackFixture.Json))!);
        using (var notTheirs = await otherSe.DeleteAsync($"api/sender-domains/{domain}"))
        {
            Assert.Equal(HttpStatusCode.NotFound, notTheirs.StatusCode);
        }
        Assert.True(await IsRegisteredAsync(owner.TenantId, "hello@" + domain));
        Assert.False(await IsRegisteredAsync(other.TenantId, "hello@" + domain));

        // Tenant tokens cannot use the admin routes, and the admin token is no tenant.
        using (var refused = await ownerSe.GetAsync($"admin/tenants/{owner.TenantId}/sender-domains"))
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        }
        using (var noTenant = await admin.GetAsync("api/sender-domains"))
        {
            Assert.Equal(HttpStatusCode.Forbidden, noTenant.StatusCode);
        }
        using (var removed = await admin.DeleteAsync($"admin/tenants/{owner.TenantId}/sender-domains/{domain}"))
        {
            Assert.Equal(HttpStatusCode.NoContent, removed.StatusCode);
        }
        Assert.Empty((await ownerSe.GetFromJsonAsync<List<SenderDomainResponse>>("api/sender-domains", StackFixture.Json))!);
    }
}
