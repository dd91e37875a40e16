using System.ComponentModel.DataAnnotations;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace Newsletter.ServiceDefaults;

/// <summary>
/// OpenApi__* keys: what the served Swagger document (and so docs/openapi/*.json, which tenants generate clients from)
/// says about where the service is.
/// </summary>
public sealed class OpenApiDocumentOptions : IValidatableObject
{
    public const string Section = "OpenApi";

    /// <summary>The service's public base URL, the document's one <c>servers</c> entry (e.g. https://mail.example.com).</summary>
    public string ServerUrl { get; set; } = "";

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (!Uri.TryCreate(ServerUrl, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
        {
            yield return new ValidationResult("OpenApi__ServerUrl must be an absolute http(s) URL.", [nameof(ServerUrl)]);
        }
    }
}

/// <summary>The shape of both services' Swagger documents: stable operation ids, product schema names, open routes marked open.</summary>
public static class OpenApiDocumentExtensions
{
    // Framework types whose .NET names would otherwise become schema names clients are generated with.
    private static readonly Dictionary<Type, string> ProductNames = new()
    {
        [typeof(HttpValidationProblemDetails)] = "ValidationProblem",
        [typeof(Microsoft.AspNetCore.Mvc.ProblemDetails)] = "Problem",
    };

    internal static void AddOpenApiDocument(this IServiceCollection services, string serviceTitle)
    {
        services.AddOptions<OpenApiDocumentOptions>().BindConfiguration(OpenApiDocumentOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddEndpointsApiExplorer();
        services.AddSwaggerGen(c =>
        {
            c.SwaggerDoc("v1", new OpenApiInfo
            {
                Title = serviceTitle,
                Version = "v1",
                Description = $"{serviceTitle} API of the Newsletter platform. Bearer tokens come from Member Center's POST /oauth/token.",
            });
            c.AddSecurityDefinition("bearer", new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http,
                Scheme = "bearer",
                BearerFormat = "JWT",
                Description = "Access token from Member Center's POST /oauth/token (client_credentials).",
            });
            c.OperationFilter<BearerRequirementFilter>();
            c.OperationFilter<PathParametersFilter>();
            c.DocumentFilter<TagDescriptionsFilter>();
            c.CustomSchemaIds(SchemaId);
        });
        services.AddOptions<SwaggerGenOptions>().Configure<IOptions<OpenApiDocumentOptions>>((swagger, document) =>
            swagger.SwaggerGeneratorOptions.Servers.Add(new OpenApiServer { Url = document.Value.ServerUrl.TrimEnd('/') }));
    }

    /// <summary>Describes the tags a service's routes use (<c>.WithTags</c>), for the document and generated clients.</summary>
    public static WebApplicationBuilder DescribeApiTags(this WebApplicationBuilder builder, params (string Tag, string Description)[] tags)
    {
        builder.Services.Configure<OpenApiTagOptions>(o =>
        {
            foreach (var (tag, description) in tags)
            {
                o.Descriptions[tag] = description;
            }
        });
        return builder;
    }

    /// <summary>
    /// The type's own name (generic arguments appended with "Of"), never its namespace: client generators turn schema
    /// names into class names. Two wire types with one name make Swashbuckle fail the document: rename one.
    /// </summary>
    public static string SchemaId(Type type)
    {
        if (ProductNames.TryGetValue(type, out var name))
        {
            return name;
        }
        if (!type.IsGenericType)
        {
            return type.Name;
        }
        var baseName = type.Name[..type.Name.IndexOf('`', StringComparison.Ordinal)];
        return baseName + "Of" + string.Concat(type.GetGenericArguments().Select(SchemaId));
    }
}

/// <summary>Descriptions of the operation tags (the sections of the document and of generated clients), by tag name.</summary>
public sealed class OpenApiTagOptions
{
    public Dictionary<string, string> Descriptions { get; } = new(StringComparer.Ordinal);
}

/// <summary>Writes <see cref="OpenApiTagOptions"/> into the document's tag list.</summary>
internal sealed class TagDescriptionsFilter(IOptions<OpenApiTagOptions> tags) : IDocumentFilter
{
    public void Apply(Microsoft.OpenApi.OpenApiDocument swaggerDoc, DocumentFilterContext context)
    {
        foreach (var tag in swaggerDoc.Tags ?? new HashSet<OpenApiTag>())
        {
            if (tag.Name is not null && tags.Value.Descriptions.TryGetValue(tag.Name, out var description))
            {
                tag.Description = description;
            }
        }
    }
}

/// <summary>
/// Documents every parameter of the path template: a route group shared by tenant and admin routes reads the admin's
/// <c>{tenant_id}</c> from the route values rather than a handler argument, and Swashbuckle only sees arguments.
/// </summary>
internal sealed partial class PathParametersFilter : IOperationFilter
{
    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        foreach (System.Text.RegularExpressions.Match m in TemplateParameter().Matches(context.ApiDescription.RelativePath ?? ""))
        {
            var name = m.Groups[1].Value;
            operation.Parameters ??= [];
            if (!operation.Parameters.Any(p => p.In == ParameterLocation.Path && p.Name == name))
            {
                operation.Parameters.Add(new OpenApiParameter
                {
                    Name = name, In = ParameterLocation.Path, Required = true, Schema = new OpenApiSchema { Type = JsonSchemaType.String },
                });
            }
        }
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"\{([^}:?=*]+)")]
    private static partial System.Text.RegularExpressions.Regex TemplateParameter();
}
