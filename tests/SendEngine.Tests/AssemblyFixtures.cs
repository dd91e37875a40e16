using SendEngine.Tests;

// One PostgreSQL server, one maildev, one real Member Center and one Send Engine for the assembly;
// every test makes its own tenant (and, when it needs a process of its own, its own Send Engine database).
[assembly: AssemblyFixture(typeof(StackFixture))]
