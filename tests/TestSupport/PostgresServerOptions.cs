namespace Newsletter.TestSupport;

/// <summary>What a <see cref="PostgresServer"/> started with <see cref="PostgresServer.StartAsync(PostgresServerOptions, CancellationToken)"/> must offer.</summary>
public sealed record PostgresServerOptions
{
    /// <summary>
    /// <c>fsync</c>, <c>synchronous_commit</c> and <c>full_page_writes</c> on (PostgreSQL's defaults), for tests of what
    /// survives a crash. Off (the default here) is faster and is what the shared test server runs with.
    /// </summary>
    public bool Durable { get; init; }

    /// <summary>
    /// A server of the test's own that it may stop, start and crash (never <see cref="PostgresServer.ExternalServerVariable"/>'s:
    /// that one is someone else's).
    /// </summary>
    public bool Restartable { get; init; }
}
