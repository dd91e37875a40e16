using Hangfire;

namespace SendEngine.Features.SenderDomains;

/// <summary>
/// A recurring Hangfire job (daily): looks every sender domain's records up again, so a domain whose records were
/// removed or changed stops counting as verified (its mail is then refused or sent unsigned, see
/// docs/deliverability.md), and retires keys whose rotation overlap has passed.
/// </summary>
public sealed partial class SenderDomainRecheck(SenderDomainStore store, ILogger<SenderDomainRecheck> logger)
{
    public const string RecurringJobId = "sender-domain-recheck";

    [AutomaticRetry(Attempts = 0)]
    [DisableConcurrentExecution(3600)]
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var retired = await store.RetireKeysAsync(cancellationToken);
        var due = await store.DueForRecheckAsync(cancellationToken);
        foreach (var (tenantId, domain) in due)
        {
            try
            {
                var checkedDomain = await store.VerifyAsync(tenantId, domain, cancellationToken);
                if (checkedDomain is not null)
                {
                    LogChecked(logger, tenantId, domain, checkedDomain.Status);
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // One domain's failure (a database hiccup) does not stop the others; it stays due for the next run.
                LogCheckFailed(logger, tenantId, domain, ex.GetType().Name, ex.Message);
            }
        }
        LogDone(logger, due.Count, retired);
    }

    [LoggerMessage(LogLevel.Information, "Sender domain {Domain} of tenant {TenantId} re-checked: {Status}")]
    private static partial void LogChecked(ILogger logger, Guid tenantId, string domain, string status);

    [LoggerMessage(LogLevel.Warning, "Sender domain {Domain} of tenant {TenantId}: the re-check failed ({ErrorType}): {Error}")]
    private static partial void LogCheckFailed(ILogger logger, Guid tenantId, string domain, string errorType, string error);

    [LoggerMessage(LogLevel.Information, "Sender domain re-check: {Count} domains checked, {Retired} rotated-out keys retired")]
    private static partial void LogDone(ILogger logger, int count, int retired);
}

/// <summary>Registers the daily re-check once Hangfire's storage lets it, retrying (as the send-job watchdog's registration).</summary>
public sealed partial class SenderDomainRecheckRegistration(IRecurringJobManager recurringJobs, TimeProvider clock, ILogger<SenderDomainRecheckRegistration> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                recurringJobs.AddOrUpdate<SenderDomainRecheck>(SenderDomainRecheck.RecurringJobId, Extensions.HangfireExtensions.MaintenanceQueue,
                    r => r.RunAsync(CancellationToken.None), Cron.Daily(3));
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogRegistrationFailed(logger, ex.Message);
                await Task.Delay(TimeSpan.FromSeconds(5), clock, stoppingToken);
            }
        }
    }

    [LoggerMessage(LogLevel.Warning, "Could not register the sender-domain re-check's schedule yet ({Error}); retrying in 5 s")]
    private static partial void LogRegistrationFailed(ILogger logger, string error);
}
