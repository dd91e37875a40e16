using Microsoft.AspNetCore.Authorization;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace Newsletter.ServiceDefaults;

/// <summary>
/// Marks the operations that require authorization as needing the bearer token, and the others (token-in-link pages,
/// the ESP webhook, the token endpoint) with an explicit empty <c>security</c>, so clients and linters see them as open.
/// </summary>
internal sealed class BearerRequirementFilter : IOperationFilter
{
    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        var metadata = context.ApiDescription.ActionDescriptor.EndpointMetadata;
        if (!metadata.OfType<IAuthorizeData>().Any() || metadata.OfType<IAllowAnonymous>().Any())
        {
            operation.Security = [];
            return;
        }
        operation.Security ??= [];
        operation.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference("bearer", context.Document)] = [] });
    }
}
