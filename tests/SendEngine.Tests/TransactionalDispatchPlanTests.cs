using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using SendEngine.Extensions;

namespace SendEngine.Tests;

/// <summary>
/// The transactional dispatcher's statements run on connections that plan each execution: a generic plan cached while
/// transactional_tasks was small scanned the whole table at every record (docs/send-engine.md "Transactional mail").
/// </summary>
public sealed class TransactionalDispatchPlanTests(StackFixture stack)
{
    [Fact]
    public async Task The_dispatch_data_source_plans_each_execution_and_the_default_one_keeps_generic_plans()
    {
        var ct = TestContext.Current.CancellationToken;
        var dispatch = stack.SendEngine.Services.GetRequiredKeyedService<NpgsqlDataSource>(DataExtensions.CustomPlans);
        var shared = stack.SendEngine.Services.GetRequiredService<NpgsqlDataSource>();
        Assert.NotSame(shared, dispatch);
        Assert.Equal("force_custom_plan", await PlanCacheModeAsync(dispatch, ct));
        Assert.Equal("auto", await PlanCacheModeAsync(shared, ct));
        // Neither compiles statements with JIT (PostgresDefaults.Tuned): 30-55 ms per execution of a short read.
        Assert.Equal("off", await ShowAsync(dispatch, "jit", ct));
        Assert.Equal("off", await ShowAsync(shared, "jit", ct));
    }

    [Fact]
    public async Task Options_already_in_the_connection_string_are_kept()
    {
        var cs = new NpgsqlConnectionStringBuilder(stack.SendEngineConnectionString) { Options = "-c statement_timeout=12345" }.ConnectionString;
        await using var db = NpgsqlDataSource.Create(DataExtensions.WithCustomPlans(cs));
        var ct = TestContext.Current.CancellationToken;
        Assert.Equal("force_custom_plan", await PlanCacheModeAsync(db, ct));
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var cmd = new NpgsqlCommand("SHOW statement_timeout", conn);
        Assert.Equal("12345ms", (string?)await cmd.ExecuteScalarAsync(ct));
    }

    private static Task<string?> PlanCacheModeAsync(NpgsqlDataSource db, CancellationToken ct) => ShowAsync(db, "plan_cache_mode", ct);

    private static async Task<string?> ShowAsync(NpgsqlDataSource db, string setting, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var cmd = new NpgsqlCommand($"SHOW {setting}", conn);
        return (string?)await cmd.ExecuteScalarAsync(ct);
    }
}
