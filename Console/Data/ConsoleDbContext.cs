using Microsoft.AspNetCore.DataProtection.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace NewsletterConsole.Data;

/// <summary>
/// The console's own small database: its sessions (server-side authentication tickets) and its Data Protection key
/// ring, so that sessions survive a restart and every console instance reads the same ones. Nothing of the tenants'
/// data is here: that stays behind the services' APIs.
/// </summary>
public sealed class ConsoleDbContext(DbContextOptions<ConsoleDbContext> options) : DbContext(options), IDataProtectionKeyContext
{
    public DbSet<SessionTicket> SessionTickets => Set<SessionTicket>();
    public DbSet<DataProtectionKey> DataProtectionKeys => Set<DataProtectionKey>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.Entity<SessionTicket>(b =>
        {
            b.ToTable("session_tickets");
            b.HasKey(t => t.KeyHash);
            b.Property(t => t.KeyHash).HasMaxLength(32);
            b.Property(t => t.Subject).HasMaxLength(100);
            b.HasIndex(t => t.ExpiresAt);
            b.HasIndex(t => t.Subject);
        });
        modelBuilder.Entity<DataProtectionKey>().ToTable("data_protection_keys");
    }
}

/// <summary>
/// One signed-in session. The cookie holds a random key; the row is found by the key's SHA-256 (a copy of the table
/// does not give the cookies), and the ticket (with the person's access and refresh tokens) is encrypted with the
/// console's Data Protection keys.
/// </summary>
public sealed class SessionTicket
{
    public required byte[] KeyHash { get; set; }
    public required byte[] Ticket { get; set; }
    /// <summary>The person (sub), for operators looking at sessions; not used to find the ticket.</summary>
    public string? Subject { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
    public DateTimeOffset ExpiresAt { get; set; }
}

/// <summary>Lets `dotnet ef migrations add` build the model without a database or the app's configuration.</summary>
internal sealed class DesignTimeDbContextFactory : IDesignTimeDbContextFactory<ConsoleDbContext>
{
    public ConsoleDbContext CreateDbContext(string[] args) =>
        new(new DbContextOptionsBuilder<ConsoleDbContext>()
            .UseNpgsql("Host=localhost;Database=console_design")
            .UseSnakeCaseNamingConvention()
            .Options);
}
