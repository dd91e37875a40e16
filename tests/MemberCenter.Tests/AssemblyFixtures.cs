using Newsletter.TestSupport;

// One PostgreSQL server and one SMTP catcher for the assembly; each Member Center fixture gets its own database.
[assembly: AssemblyFixture(typeof(PostgresServer))]
[assembly: AssemblyFixture(typeof(MailDevServer))]
