using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace MemberCenter.Data;

/// <summary>Lets `dotnet ef migrations add` build the model without a database or the app's configuration.</summary>
internal sealed class DesignTimeDbContextFactory : IDesignTimeDbContextFactory<MemberCenterDbContext>
{
    public MemberCenterDbContext CreateDbContext(string[] args) =>
        new(new DbContextOptionsBuilder<MemberCenterDbContext>()
            .UseNpgsql("Host=localhost;Database=membercenter_design")
            .UseSnakeCaseNamingConvention()
            .Options);
}
