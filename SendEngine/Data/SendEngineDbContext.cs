using Microsoft.EntityFrameworkCore;
using SendEngine.Features.SendJobs;
using SendEngine.Features.Suppressions;

namespace SendEngine.Data;

public sealed class SendEngineDbContext(DbContextOptions<SendEngineDbContext> options) : DbContext(options)
{
    public DbSet<SendJob> SendJobs => Set<SendJob>();
    public DbSet<SendJobRecipient> Recipients => Set<SendJobRecipient>();
    public DbSet<Suppression> Suppressions => Set<Suppression>();

    protected override void OnModelCreating(ModelBuilder modelBuilder) =>
        modelBuilder.ApplyConfigurationsFromAssembly(typeof(SendEngineDbContext).Assembly);
}
