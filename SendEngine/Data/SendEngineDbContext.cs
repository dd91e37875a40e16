using Microsoft.AspNetCore.DataProtection.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;
using SendEngine.Features.SendJobs;
using SendEngine.Features.Suppressions;
using SendEngine.Features.Transactional;

namespace SendEngine.Data;

public sealed class SendEngineDbContext(DbContextOptions<SendEngineDbContext> options) : DbContext(options), IDataProtectionKeyContext
{
    /// <summary>Data Protection's key ring (ProviderCredentialsExtensions): shared by every Send Engine process.</summary>
    public DbSet<DataProtectionKey> DataProtectionKeys => Set<DataProtectionKey>();

    public DbSet<SendJob> SendJobs => Set<SendJob>();
    public DbSet<SendJobRecipient> Recipients => Set<SendJobRecipient>();
    public DbSet<Suppression> Suppressions => Set<Suppression>();
    public DbSet<TransactionalRequest> TransactionalRequests => Set<TransactionalRequest>();
    public DbSet<TransactionalTask> TransactionalTasks => Set<TransactionalTask>();
    public DbSet<TransactionalDelivery> TransactionalDeliveries => Set<TransactionalDelivery>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.ApplyConfigurationsFromAssembly(typeof(SendEngineDbContext).Assembly);
        modelBuilder.Entity<DataProtectionKey>().ToTable("data_protection_keys");
        modelBuilder.ApplyConfiguration(new Newsletter.ServiceDefaults.OperationLog.OperationLogEntryConfiguration());
    }
}
