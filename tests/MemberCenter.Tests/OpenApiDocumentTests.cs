using Newsletter.TestSupport;

namespace MemberCenter.Tests;

/// <summary>Issue 12, part 5: the document tenants generate clients from is the one the service serves.</summary>
[Collection(MemberCenterCollection.Name)]
public sealed class OpenApiDocumentTests(MemberCenterFixture mc)
{
    [Fact]
    public async Task Served_document_matches_docs_openapi_member_center_json()
    {
        using var http = mc.Http();
        http.DefaultRequestHeaders.Authorization = MemberCenterFixture.ManagementAuthorization;
        var served = await http.GetStringAsync("swagger/v1/swagger.json");
        var drift = await OpenApiDocuments.CompareWithCommittedAsync("member-center", served);
        Assert.True(drift is null, drift);
    }
}

/// <summary>A Member Center of its own: the document's servers entry follows OpenApi__ServerUrl.</summary>
public sealed class OpenApiServerUrlTests(PostgresServer postgres, MailDevServer mail)
{
    [Fact]
    public async Task The_documents_server_is_OpenApi_ServerUrl()
    {
        await using var center = new MemberCenterFixture(postgres, mail);
        center.Settings["OpenApi:ServerUrl"] = "https://members.example.net/";
        await center.InitializeAsync();
        using var http = center.Http();
        http.DefaultRequestHeaders.Authorization = MemberCenterFixture.ManagementAuthorization;

        var document = System.Text.Json.JsonDocument.Parse(await http.GetStringAsync("swagger/v1/swagger.json")).RootElement;

        var server = Assert.Single(document.GetProperty("servers").EnumerateArray());
        Assert.Equal("https://members.example.net", server.GetProperty("url").GetString());
    }
}
