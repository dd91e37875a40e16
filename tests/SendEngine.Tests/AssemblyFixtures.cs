using Newsletter.TestSupport;
using SendEngine.Tests;

// One PostgreSQL server, one maildev, one real Member Center and one Send Engine for the assembly;
// every test makes its own tenant (and, when it needs a process of its own, its own Send Engine database).
[assembly: AssemblyFixture(typeof(StackFixture))]

// Each class is its own collection and makes its own tenants, so classes run side by side. Most of a test's time is
// waiting (for mail, a job, a restarted process), not computing: 4 at a time on any machine, which keeps 2 cores busy
// without starving the servers. The long classes ([LongRunning]) start first so no lane runs one alone at the end.
[assembly: Xunit.v3.Parallelization(MaxThreads = 4)]
[assembly: TestCollectionOrderer(typeof(LongRunningFirstOrderer))]
