using Newsletter.TestSupport;

// One PostgreSQL server and one SMTP catcher for the assembly; each Member Center fixture gets its own database.
[assembly: AssemblyFixture(typeof(PostgresServer))]
[assembly: AssemblyFixture(typeof(MailDevServer))]
// One chromium for the browser tests, launched on first use (ChromiumTest).
[assembly: AssemblyFixture(typeof(MemberCenter.Tests.SharedChromium))]

// Collections run side by side, 4 at a time on any machine (most of a test's time is waiting on a server, a restart or
// chromium); the long ones ([LongRunning]: the two shared-Member-Center collections, the classes that start hosts of
// their own) start first so no lane runs one alone at the end.
[assembly: Xunit.v3.Parallelization(MaxThreads = 4)]
[assembly: TestCollectionOrderer(typeof(LongRunningFirstOrderer))]
