using MemberCenter.Features.Auth;
using MemberCenter.Features.Lists;
using MemberCenter.Features.Outbox;
using MemberCenter.Features.People;
using MemberCenter.Features.Privacy;
using MemberCenter.Features.Subscribers;
using MemberCenter.Features.Subscriptions;
using MemberCenter.Features.Tenants;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Identity.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;

namespace MemberCenter.Data;

/// <summary>Member Center's database; people are ASP.NET Core Identity users (tables users, roles, user_roles ...).</summary>
public sealed class MemberCenterDbContext(DbContextOptions<MemberCenterDbContext> options)
    : IdentityDbContext<Person, IdentityRole<Guid>, Guid>(options)
{
    public DbSet<Tenant> Tenants => Set<Tenant>();
    public DbSet<ApiClient> ApiClients => Set<ApiClient>();
    public DbSet<SigningKey> SigningKeys => Set<SigningKey>();
    public DbSet<MailingList> MailingLists => Set<MailingList>();
    public DbSet<Subscriber> Subscribers => Set<Subscriber>();
    public DbSet<Subscription> Subscriptions => Set<Subscription>();
    public DbSet<SubscriptionToken> SubscriptionTokens => Set<SubscriptionToken>();
    public DbSet<LinkKey> LinkKeys => Set<LinkKey>();
    public DbSet<SubscriptionChange> SubscriptionChanges => Set<SubscriptionChange>();
    public DbSet<ConsentRecord> ConsentRecords => Set<ConsentRecord>();
    public DbSet<OutboxMessage> OutboxMessages => Set<OutboxMessage>();
    public DbSet<ErasedAddress> ErasedAddresses => Set<ErasedAddress>();
    public DbSet<SendEngineRequest> SendEngineRequests => Set<SendEngineRequest>();
    public DbSet<SubscriberImport> SubscriberImports => Set<SubscriberImport>();
    public DbSet<SubscriberImportRow> SubscriberImportRows => Set<SubscriberImportRow>();
    public DbSet<Membership> Memberships => Set<Membership>();
    public DbSet<Invitation> Invitations => Set<Invitation>();
    public DbSet<Features.Reader.ListPreferenceFields> ListPreferenceFields => Set<Features.Reader.ListPreferenceFields>();
    public DbSet<Features.Reader.TenantBranding> TenantBrandings => Set<Features.Reader.TenantBranding>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        base.OnModelCreating(modelBuilder);
        // Identity's AspNet* names, in the snake_case of the rest of the schema.
        modelBuilder.Entity<Person>().ToTable("users");
        modelBuilder.Entity<IdentityRole<Guid>>().ToTable("roles");
        modelBuilder.Entity<IdentityUserRole<Guid>>().ToTable("user_roles");
        modelBuilder.Entity<IdentityUserClaim<Guid>>().ToTable("user_claims");
        modelBuilder.Entity<IdentityUserLogin<Guid>>().ToTable("user_logins");
        modelBuilder.Entity<IdentityUserToken<Guid>>().ToTable("user_tokens");
        modelBuilder.Entity<IdentityRoleClaim<Guid>>().ToTable("role_claims");
        // Identity's schema version 3 (PeopleExtensions; the design-time factory sets it too): passkeys, keyed by the
        // credential id, the rest (public key, sign count, flags, name) in one JSON column.
        modelBuilder.Entity<IdentityUserPasskey<Guid>>().ToTable("user_passkeys");
        modelBuilder.UseOpenIddict();
        modelBuilder.ApplyConfigurationsFromAssembly(typeof(MemberCenterDbContext).Assembly);
        modelBuilder.ApplyConfiguration(new Newsletter.ServiceDefaults.OperationLog.OperationLogEntryConfiguration());
    }
}
