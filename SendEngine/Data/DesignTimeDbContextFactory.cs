using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace SendEngine.Data;

/// <summary>Lets `dotnet ef migrations add` build the model without a database or the app's configuration.</summary>
internal sealed class DesignTimeDbContextFactory : IDesignTimeDbContextFactory<SendEngineDbContext>
{
    public SendEngineDbContext CreateDbContext(string[] args) =>
        new(new DbContextOptionsBuilder<SendEngineDbContext>()
            .UseNpgsql("Host=localhost;Database=sendengine_design")
            .UseSnakeCaseNamingConvention()
            .Options);
}
