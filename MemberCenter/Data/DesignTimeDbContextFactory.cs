using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace MemberCenter.Data;

/// <summary>Lets `dotnet ef migrations add` build the model without a database or the app's configuration.</summary>
internal sealed class DesignTimeDbContextFactory : IDesignTimeDbContextFactory<MemberCenterDbContext>
{
    public MemberCenterDbContext CreateDbContext(string[] args)
    {
        // Identity reads its schema version (3: passkeys) from IdentityOptions, as in the running service.
        var services = new ServiceCollection();
        services.Configure<IdentityOptions>(o => o.Stores.SchemaVersion = IdentitySchemaVersions.Version3);
        return new(new DbContextOptionsBuilder<MemberCenterDbContext>()
            .UseNpgsql("Host=localhost;Database=membercenter_design")
            .UseSnakeCaseNamingConvention()
            .UseApplicationServiceProvider(services.BuildServiceProvider())
            .Options);
    }
}
