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
