using MemberCenter.Features.Auth;
using MemberCenter.Features.Lists;
using MemberCenter.Features.Outbox;
using MemberCenter.Features.Privacy;
using MemberCenter.Features.Subscribers;
using MemberCenter.Features.Subscriptions;
using MemberCenter.Features.Tenants;
using Microsoft.EntityFrameworkCore;

namespace MemberCenter.Data;

public sealed class MemberCenterDbContext(DbContextOptions<MemberCenterDbContext> options) : DbContext(options)
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

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.UseOpenIddict();
        modelBuilder.ApplyConfigurationsFromAssembly(typeof(MemberCenterDbContext).Assembly);
        modelBuilder.ApplyConfiguration(new Newsletter.ServiceDefaults.OperationLog.OperationLogEntryConfiguration());
    }
}
