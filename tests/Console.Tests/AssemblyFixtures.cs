using Console.Tests;

// One PostgreSQL, maildev, Member Center, Send Engine, console and chromium for the assembly: the browser tests share
// the seeded tenants and people and sign each person in once.
[assembly: AssemblyFixture(typeof(ConsoleFixture))]
