using Newsletter.TestSupport;
using SendEngine.Tests;

// One PostgreSQL server, one maildev, one real Member Center and one Send Engine for the assembly;
// every test makes its own tenant (and, when it needs a process of its own, its own Send Engine database).
[assembly: AssemblyFixture(typeof(StackFixture))]

// Each class is its own collection and makes its own tenants, so classes run side by side. Most of a test's time is
// waiting (for a job, a mail, an outage, a restarted process), not computing: 3 at a time on any machine (the default
// is one per core, 2 in CI, which left the cores mostly idle for ten minutes). SendEngineProcess starts at most two
// processes at a time, so three process-heavy classes side by side do not starve each other's start-up. The long
// classes ([LongRunning]) start first so no lane runs one alone at the end.
[assembly: Xunit.v3.Parallelization(MaxThreads = 3)]
[assembly: TestCollectionOrderer(typeof(LongRunningFirstOrderer))]
