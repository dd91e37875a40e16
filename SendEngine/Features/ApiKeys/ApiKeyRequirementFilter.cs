using Microsoft.AspNetCore.Authorization;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace SendEngine.Features.ApiKeys;

/// <summary>Swagger: routes behind <see cref="ApiKeyExtensions.RequireApiKey"/> need X-Pigeon-Api-Key, not a bearer token.</summary>
internal sealed class ApiKeyRequirementFilter : IOperationFilter
{
    public const string SchemeName = "api_key";

    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        if (!context.ApiDescription.ActionDescriptor.EndpointMetadata.OfType<IAuthorizeData>().Any(a => a.Policy == ApiKeyExtensions.Policy))
        {
            return;
        }
        operation.Security = [new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(SchemeName, context.Document)] = [] }];
    }
}
