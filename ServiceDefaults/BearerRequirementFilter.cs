using Microsoft.AspNetCore.Authorization;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace Newsletter.ServiceDefaults;

/// <summary>
/// Marks the operations that require authorization as needing the bearer token (with the 401 and 403 the
/// authorization layer answers), and the others (token-in-link pages, the ESP webhook, the token endpoint) with an
/// explicit empty <c>security</c>, so clients and linters see them as open.
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
        operation.Responses ??= [];
        operation.Responses.TryAdd("401", new OpenApiResponse { Description = "Missing or invalid credentials." });
        operation.Responses.TryAdd("403", new OpenApiResponse { Description = "The credentials do not allow this operation (scope, tenant or key)." });
    }
}
