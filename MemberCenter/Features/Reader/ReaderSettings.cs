using System.Text.Json;
using MemberCenter.Features.Lists;
using MemberCenter.Features.Tenants;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Newsletter.Contracts;

namespace MemberCenter.Features.Reader;

/// <summary>A list's preference fields and default language; no row: free-form preferences, English.</summary>
public sealed class ListPreferenceFields
{
    public Guid ListId { get; set; }
    public required string DefaultLanguage { get; set; }
    /// <summary>The fields as the API takes them (<see cref="PreferenceField"/>[]), a JSON array.</summary>
    public string Fields { get; set; } = "[]";
    public DateTimeOffset UpdatedAt { get; set; }

    public List<PreferenceField> ParseFields() =>
        JsonSerializer.Deserialize<List<PreferenceField>>(Fields, ReaderJson.Options) ?? [];
}

/// <summary>How a tenant's reader pages and confirmation mail look; no row: the built-in look and the tenant's name.</summary>
public sealed class TenantBranding
{
    public Guid TenantId { get; set; }
    public string? DisplayName { get; set; }
    public string? LogoUrl { get; set; }
    public string? PrimaryColor { get; set; }
    public string? AccentColor { get; set; }
    public string? FooterText { get; set; }
    public string? PostalAddress { get; set; }
    /// <summary>Per language {subject, text} of the confirmation mail, a JSON object; a language missing uses the built-in text.</summary>
    public string ConfirmationMail { get; set; } = "{}";
    public DateTimeOffset UpdatedAt { get; set; }

    public Dictionary<string, ConfirmationMailText> ParseConfirmationMail() =>
        JsonSerializer.Deserialize<Dictionary<string, ConfirmationMailText>>(ConfirmationMail, ReaderJson.Options) ?? [];
}

/// <summary>The stored JSON uses the wire's snake_case, so a row reads like the API answer.</summary>
internal static class ReaderJson
{
    public static readonly JsonSerializerOptions Options = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
}

internal sealed class ListPreferenceFieldsConfiguration : IEntityTypeConfiguration<ListPreferenceFields>
{
    public void Configure(EntityTypeBuilder<ListPreferenceFields> b)
    {
        b.ToTable("list_preference_fields");
        b.HasKey(x => x.ListId);
        b.Property(x => x.DefaultLanguage).HasMaxLength(16);
        b.Property(x => x.Fields).HasColumnType("jsonb");
        b.HasOne<MailingList>().WithOne().HasForeignKey<ListPreferenceFields>(x => x.ListId).OnDelete(DeleteBehavior.Cascade);
    }
}

internal sealed class TenantBrandingConfiguration : IEntityTypeConfiguration<TenantBranding>
{
    public void Configure(EntityTypeBuilder<TenantBranding> b)
    {
        b.ToTable("tenant_brandings");
        b.HasKey(x => x.TenantId);
        b.Property(x => x.DisplayName).HasMaxLength(200);
        b.Property(x => x.LogoUrl).HasMaxLength(2000);
        b.Property(x => x.PrimaryColor).HasMaxLength(7);
        b.Property(x => x.AccentColor).HasMaxLength(7);
        b.Property(x => x.FooterText).HasMaxLength(2000);
        b.Property(x => x.PostalAddress).HasMaxLength(500);
        b.Property(x => x.ConfirmationMail).HasColumnType("jsonb");
        b.HasOne<Tenant>().WithOne().HasForeignKey<TenantBranding>(x => x.TenantId).OnDelete(DeleteBehavior.Cascade);
    }
}
