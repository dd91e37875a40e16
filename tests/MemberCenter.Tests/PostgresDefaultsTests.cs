using Newsletter.ServiceDefaults.Data;
using Npgsql;

namespace MemberCenter.Tests;

public sealed class PostgresDefaultsTests
{
    [Fact]
    public void Tuned_adds_the_pool_defaults_when_the_connection_string_does_not_set_them()
    {
        var csb = new NpgsqlConnectionStringBuilder(PostgresDefaults.Tuned("Host=db;Username=app"));
        Assert.True(csb.NoResetOnClose);
        Assert.Equal(64, csb.MaxAutoPrepare);
        Assert.Equal("-c jit=off", csb.Options);
        Assert.Equal("db", csb.Host);
    }

    [Fact]
    public void Tuned_turns_jit_off_beside_the_operators_options_and_keeps_the_operators_jit()
    {
        Assert.Equal("-c statement_timeout=5000 -c jit=off",
            new NpgsqlConnectionStringBuilder(PostgresDefaults.Tuned("Host=db;Options=-c statement_timeout=5000")).Options);
        Assert.Equal("-c jit=on", new NpgsqlConnectionStringBuilder(PostgresDefaults.Tuned("Host=db;Options=-c jit=on")).Options);
    }

    [Theory]
    [InlineData("Host=db;No Reset On Close=false;Max Auto Prepare=0")]
    [InlineData("Host=db;noresetonclose=false;MaxAutoPrepare=0")]
    public void Tuned_keeps_what_the_operator_set(string connectionString)
    {
        var csb = new NpgsqlConnectionStringBuilder(PostgresDefaults.Tuned(connectionString));
        Assert.False(csb.NoResetOnClose);
        Assert.Equal(0, csb.MaxAutoPrepare);
    }
}
