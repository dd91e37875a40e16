using System.Text.Json;
using System.Text.RegularExpressions;
using MemberCenter.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Net.Http.Headers;
using Newsletter.Contracts;

namespace MemberCenter.Features.Reader;

/// <summary>The tenant's look as pages use it: colours always valid, the name falling back to the tenant's.</summary>
public sealed record Brand(string? Name, string? LogoUrl, string Primary, string Accent, string? FooterText, string? PostalAddress,
    IReadOnlyDictionary<string, ConfirmationMailText> ConfirmationMail)
{
    public const string DefaultPrimary = "#1d4ed8";
    public const string DefaultAccent = "#0f766e";
    public static readonly Brand Plain = new(null, null, DefaultPrimary, DefaultAccent, null, null, new Dictionary<string, ConfirmationMailText>());
}

/// <summary>Everything a reader page or the confirmation mail needs besides its own data: language, strings, brand, fields.</summary>
public sealed record ReaderLook(Texts T, Brand Brand, IReadOnlyList<PreferenceField> Fields)
{
    /// <summary>A field's label in the page language, else English, else its key (only when it has no label at all).</summary>
    public string Label(PreferenceField field) => Pick(field.Labels) ?? field.Key ?? "";

    public string Label(PreferenceChoice choice) => Pick(choice.Labels) ?? choice.Value ?? "";

    private string? Pick(Dictionary<string, string>? labels) =>
        labels is null ? null : labels.GetValueOrDefault(T.Language) ?? labels.GetValueOrDefault(ReaderLanguages.English);
}

/// <summary>Loads a list's look (its tenant's branding, its fields and default language) and picks the language.</summary>
public sealed partial class ReaderLooks(MemberCenterDbContext db, ReaderText text)
{
    [GeneratedRegex("^#[0-9a-fA-F]{6}$")]
    private static partial Regex Color();

    /// <summary>The look without a list (an unknown link): Accept-Language, else English; the built-in brand.</summary>
    public ReaderLook Anonymous(IList<StringWithQualityHeaderValue>? acceptLanguage) =>
        new(text.For(ReaderText.Choose(null, acceptLanguage, null)), Brand.Plain, []);

    public async Task<ReaderLook> ForListAsync(Guid listId, string? langPreference, IList<StringWithQualityHeaderValue>? acceptLanguage, CancellationToken ct)
    {
        var row = await (from l in db.MailingLists
                         join t in db.Tenants on l.TenantId equals t.Id
                         where l.Id == listId
                         select new
                         {
                             TenantName = t.Name,
                             Branding = db.TenantBrandings.FirstOrDefault(b => b.TenantId == t.Id),
                             Fields = db.ListPreferenceFields.FirstOrDefault(f => f.ListId == l.Id),
                         }).AsNoTracking().FirstOrDefaultAsync(ct);
        if (row is null)
        {
            return Anonymous(acceptLanguage);
        }
        var b = row.Branding;
        var brand = new Brand(
            b?.DisplayName ?? row.TenantName,
            b?.LogoUrl,
            b?.PrimaryColor is { } p && Color().IsMatch(p) ? p : Brand.DefaultPrimary,
            b?.AccentColor is { } a && Color().IsMatch(a) ? a : Brand.DefaultAccent,
            b?.FooterText,
            b?.PostalAddress,
            b?.ParseConfirmationMail() ?? []);
        var language = ReaderText.Choose(langPreference, acceptLanguage, row.Fields?.DefaultLanguage);
        return new ReaderLook(text.For(language), brand, row.Fields?.ParseFields() ?? []);
    }

    /// <summary>The fields of a list of the tenant (none: free-form preferences, or not the tenant's list).</summary>
    public async Task<IReadOnlyList<PreferenceField>> FieldsAsync(Guid tenantId, Guid listId, CancellationToken ct)
    {
        var json = await db.ListPreferenceFields
            .Where(f => f.ListId == listId && db.MailingLists.Any(l => l.Id == listId && l.TenantId == tenantId))
            .Select(f => f.Fields).FirstOrDefaultAsync(ct);
        return json is null ? [] : JsonSerializer.Deserialize<List<PreferenceField>>(json, ReaderJson.Options) ?? [];
    }

    /// <summary>The subscriber's <c>lang</c> preference when it is a string.</summary>
    public static string? LangOf(IReadOnlyDictionary<string, JsonElement>? preferences) =>
        preferences is not null && preferences.TryGetValue(ReaderSettingsValidation.LanguageKey, out var v) && v.ValueKind == JsonValueKind.String
            ? v.GetString()
            : null;
}
