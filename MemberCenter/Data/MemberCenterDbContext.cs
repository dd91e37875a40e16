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

    /// <summary>
    /// Identity's schema with passkeys (user_passkeys), fixed here rather than read from IdentityOptions, so that the
    /// design-time factory (migrations) builds the same model as the running service.
    /// </summary>
    protected override Version SchemaVersion => IdentitySchemaVersions.Version3;

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
        // A person's passkeys: the credential id is the key, the rest (public key, sign count, flags, name) one jsonb column.
        var passkey = modelBuilder.Entity<IdentityUserPasskey<Guid>>();
        passkey.ToTable("user_passkeys");
        passkey.HasKey(p => p.CredentialId);
        passkey.Property(p => p.CredentialId).HasMaxLength(1024);
        passkey.OwnsOne(p => p.Data, d => d.ToJson());
        modelBuilder.Entity<Person>().HasMany<IdentityUserPasskey<Guid>>().WithOne().HasForeignKey(p => p.UserId).IsRequired();
        modelBuilder.UseOpenIddict();
        modelBuilder.ApplyConfigurationsFromAssembly(typeof(MemberCenterDbContext).Assembly);
        modelBuilder.ApplyConfiguration(new Newsletter.ServiceDefaults.OperationLog.OperationLogEntryConfiguration());
    }
}
