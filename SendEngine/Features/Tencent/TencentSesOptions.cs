using System.ComponentModel.DataAnnotations;

namespace SendEngine.Features.Tencent;

/// <summary>TencentSes — the SendEmail (API 2020-10-02) delivery adapter. Only required when a tenant (or the default) uses it.</summary>
public sealed class TencentSesOptions
{
    public const string Section = "TencentSes";

    public string? SecretId { get; set; }
    public string? SecretKey { get; set; }

    /// <summary>ap-guangzhou or ap-hongkong (the regions SendEmail serves).</summary>
    [Required]
    public string Region { get; set; } = "ap-guangzhou";

    /// <summary>The API endpoint; a region-specific one (ses.ap-hongkong.tencentcloudapi.com) or a test stand-in.</summary>
    [Required, Url]
    public string Endpoint { get; set; } = "https://ses.tencentcloudapi.com";

    /// <summary>The service name in the credential scope (the endpoint's first label for Tencent's own hosts).</summary>
    [Required]
    public string Service { get; set; } = "ses";

    /// <summary>Overrides the message's From (Tencent: "Alias &lt;address&gt;", the address must be a verified sender).</summary>
    public string? FromAddress { get; set; }

    /// <summary>SendEmail's Unsubscribe option ("0" none, "1" Simplified Chinese, "2" English…); unset = not sent.
    /// Our messages already carry Member Center's link and List-Unsubscribe header.</summary>
    public string? Unsubscribe { get; set; }

    /// <summary>SendEmail's TriggerType (0 batch/marketing, 1 triggered); unset = not sent.</summary>
    [Range(0, 1)]
    public int? TriggerType { get; set; }

    [Range(typeof(TimeSpan), "00:00:01", "00:05:00")]
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Retries inside one attempt for 429/503 and connection failures before the request was sent (DNS, connect,
    /// TLS), with exponential backoff and jitter. Other 5xx (502, 504…) are not retried within the call (the runner
    /// retries the recipient later); timeouts and broken connections not at all, as Tencent may have sent.</summary>
    [Range(0, 10)]
    public int HttpRetries { get; set; } = 3;

    [Range(typeof(TimeSpan), "00:00:00.001", "00:01:00")]
    public TimeSpan HttpRetryBaseDelay { get; set; } = TimeSpan.FromMilliseconds(500);
}
