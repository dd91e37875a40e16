using Newsletter.TestSupport;

namespace SendEngine.Tests;

/// <summary>Issue 12, part 5: the document tenants generate clients from is the one the service serves.</summary>
public sealed class OpenApiDocumentTests(StackFixture stack)
{
    [Fact]
    public async Task Served_document_matches_docs_openapi_send_engine_json()
    {
        using var se = stack.SendEngineClient();
        se.DefaultRequestHeaders.Authorization = StackFixture.ManagementAuthorization;
        var served = await se.GetStringAsync("swagger/v1/swagger.json");
        var drift = await OpenApiDocuments.CompareWithCommittedAsync("send-engine", served);
        Assert.True(drift is null, drift);
    }
}
