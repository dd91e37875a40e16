using Newsletter.TestSupport;

namespace SendEngine.Tests;

/// <summary>
/// A PostgreSQL server with fsync and synchronous commit on (the shared test server has both off), for the Send Engine
/// databases of a fault-test class: what a crash or an outage leaves behind is then what a real server keeps.
/// </summary>
public sealed class DurablePostgres : IAsyncLifetime
{
    public PostgresServer Server { get; private set; } = null!;

    public async ValueTask InitializeAsync() => Server = await PostgresServer.StartDurableAsync();

    public async ValueTask DisposeAsync()
    {
        if (Server is not null)
        {
            await Server.DisposeAsync();
        }
    }
}
