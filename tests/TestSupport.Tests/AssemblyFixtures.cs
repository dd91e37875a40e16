using Newsletter.TestSupport;

// One PostgreSQL server and one maildev for the whole test assembly; each test makes its own database.
[assembly: AssemblyFixture(typeof(PostgresServer))]
[assembly: AssemblyFixture(typeof(MailDevServer))]
