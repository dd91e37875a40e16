using System.Reflection;
using Xunit.Sdk;
using Xunit.v3;

namespace Newsletter.TestSupport;

/// <summary>
/// Marks a test class (or a collection definition) whose tests take long in total, with roughly how long (seconds, as
/// measured on a loaded 2-core machine). <see cref="LongRunningFirstOrderer"/> starts such collections first.
/// </summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class LongRunningAttribute(int seconds) : Attribute
{
    public int Seconds { get; } = seconds;
}

/// <summary>
/// Starts the collections marked <see cref="LongRunningAttribute"/> first, longest first, and the rest in xUnit's usual
/// (random) order. The parallel lanes then finish together instead of one lane running a long class alone at the end.
/// Order only: every collection still runs on its own fixtures and data.
/// </summary>
public sealed class LongRunningFirstOrderer : ITestCollectionOrderer
{
    private const string PerClassPrefix = "Test collection for ";

    public IReadOnlyCollection<TTestCollection> OrderTestCollections<TTestCollection>(IReadOnlyCollection<TTestCollection> testCollections)
        where TTestCollection : ITestCollection =>
        // OrderByDescending is stable: equal weights keep the default order.
        DefaultTestCollectionOrderer.Instance.OrderTestCollections(testCollections).OrderByDescending(c => Weight(c)).ToList();

    private static int Weight(ITestCollection collection)
    {
        var name = collection.TestCollectionClassName ?? collection.TestCollectionDisplayName;
        if (name.StartsWith(PerClassPrefix, StringComparison.Ordinal))
        {
            name = name[PerClassPrefix.Length..];
        }
        // A full type name has no spaces; anything after one is a suffix of the display name.
        if (name.IndexOf(' ', StringComparison.Ordinal) is > 0 and var space)
        {
            name = name[..space];
        }
        foreach (var assembly in AppDomain.CurrentDomain.GetAssemblies())
        {
            if (assembly.IsDynamic)
            {
                continue;
            }
            if (assembly.GetType(name, throwOnError: false) is { } type)
            {
                return type.GetCustomAttribute<LongRunningAttribute>()?.Seconds ?? 0;
            }
        }
        return 0;
    }
}
