using System.Diagnostics;
using System.Text;
using Newsletter.TestSupport;

namespace Newsletter.TestSupport.Tests;

/// <summary>
/// Issue 12, part 5: the committed API documents (docs/openapi/, kept equal to the served ones by the services'
/// OpenApiDocumentTests) lint clean and generate clients that compile, as a tenant would generate them (README).
/// Needs tools/node_modules (test.sh runs npm ci) and the nswag dotnet tool (dotnet tool restore).
/// </summary>
public sealed class OpenApiClientTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(5);
    private static string Tools => Path.Combine(RepoPaths.Root, "tools", "node_modules", ".bin");

    public static TheoryData<string> Documents => new(OpenApiDocuments.Names);

    [Theory]
    [MemberData(nameof(Documents))]
    public async Task Committed_document_lints_with_no_errors(string name)
    {
        var (exit, output) = await RunAsync(Path.Combine(Tools, "redocly"), RepoPaths.Root,
            "lint", OpenApiDocuments.CommittedPath(name), "--config", Path.Combine(OpenApiDocuments.Directory, "redocly.yaml"), "--format=stylish");
        Assert.True(exit == 0, $"redocly lint docs/openapi/{name}.json (exit {exit}):\n{output}");
        Assert.Contains("valid", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TypeScript_clients_generated_with_openapi_typescript_compile()
    {
        using var dir = new TempDirectory();
        foreach (var name in OpenApiDocuments.Names)
        {
            var (exit, output) = await RunAsync(Path.Combine(Tools, "openapi-typescript"), RepoPaths.Root,
                OpenApiDocuments.CommittedPath(name), "-o", Path.Combine(dir.Path, name + ".ts"));
            Assert.True(exit == 0, $"openapi-typescript docs/openapi/{name}.json (exit {exit}):\n{output}");
        }
        // A tenant's use of both: typed paths through openapi-fetch, and the operations by operationId.
        await File.WriteAllTextAsync(Path.Combine(dir.Path, "usage.ts"), """
            import createClient from "openapi-fetch";
            import type { paths as MemberCenterPaths, operations as MemberCenterOperations } from "./member-center";
            import type { paths as SendEnginePaths, operations as SendEngineOperations } from "./send-engine";

            type CreateSendJob = SendEngineOperations["createSendJob"]["requestBody"];
            type TokenAnswer = MemberCenterOperations["issueToken"]["responses"][200]["content"]["application/json"];

            export async function listJobs(token: TokenAnswer, job: NonNullable<CreateSendJob>["content"]["application/json"]) {
              const memberCenter = createClient<MemberCenterPaths>({ baseUrl: "http://localhost:7850" });
              const sendEngine = createClient<SendEnginePaths>({ baseUrl: "http://localhost:7860", headers: { Authorization: `Bearer ${token.access_token}` } });
              const lists = await memberCenter.GET("/api/lists");
              const created = await sendEngine.POST("/api/send-jobs", { body: job });
              return [lists.data?.length, created.data?.id];
            }
            """);
        // openapi-fetch comes from tools/node_modules (a tenant would npm install it).
        var openapiFetch = Path.Combine(RepoPaths.Root, "tools", "node_modules", "openapi-fetch");
        await File.WriteAllTextAsync(Path.Combine(dir.Path, "tsconfig.json"), $$"""
            {
              "compilerOptions": {
                "noEmit": true, "strict": true, "target": "es2022", "module": "esnext", "moduleResolution": "bundler",
                "lib": ["es2022", "dom"], "types": [], "paths": { "openapi-fetch": [{{System.Text.Json.JsonSerializer.Serialize(openapiFetch)}}] }
              },
              "files": ["member-center.ts", "send-engine.ts", "usage.ts"]
            }
            """);
        var (tscExit, tscOutput) = await RunAsync(Path.Combine(Tools, "tsc"), dir.Path, "--project", Path.Combine(dir.Path, "tsconfig.json"));
        Assert.True(tscExit == 0, $"tsc --noEmit (exit {tscExit}):\n{tscOutput}");
    }

    [Fact]
    public async Task CSharp_clients_generated_with_NSwag_build()
    {
        // Outside the repository: the solution's Directory.Build.props and central package versions are not a tenant's.
        using var dir = new TempDirectory();
        foreach (var name in OpenApiDocuments.Names)
        {
            var className = string.Concat(name.Split('-').Select(w => char.ToUpperInvariant(w[0]) + w[1..]));
            var (exit, output) = await RunAsync("dotnet", RepoPaths.Root,
                "nswag", "openapi2csclient", $"/input:{OpenApiDocuments.CommittedPath(name)}", $"/output:{Path.Combine(dir.Path, className + "Client.cs")}",
                $"/namespace:Newsletter.Clients.{className}", $"/className:{className}Client", "/JsonLibrary:SystemTextJson", "/GenerateClientInterfaces:true");
            Assert.True(exit == 0, $"dotnet nswag openapi2csclient docs/openapi/{name}.json (exit {exit}):\n{output}");
        }
        await File.WriteAllTextAsync(Path.Combine(dir.Path, "Clients.csproj"), """
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
                <ImplicitUsings>enable</ImplicitUsings>
              </PropertyGroup>
            </Project>
            """);
        // The methods are named after the operationIds.
        await File.WriteAllTextAsync(Path.Combine(dir.Path, "Usage.cs"), """
            namespace Newsletter.Clients;

            public static class Usage
            {
                public static readonly string[] Operations =
                [
                    nameof(MemberCenter.MemberCenterClient.IssueTokenAsync),
                    nameof(MemberCenter.MemberCenterClient.ListListsAsync),
                    nameof(SendEngine.SendEngineClient.CreateSendJobAsync),
                    nameof(SendEngine.SendEngineClient.ListSuppressionsAsync),
                ];
            }
            """);
        var (buildExit, buildOutput) = await RunAsync("dotnet", dir.Path,
            "build", "-nologo", "-v", "q", "-tl:off", "-nodeReuse:false", "-p:UseSharedCompilation=false", "-clp:ErrorsOnly");
        Assert.True(buildExit == 0, $"dotnet build of the generated clients (exit {buildExit}):\n{buildOutput}");
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string fileName, string workingDirectory, params string[] args)
    {
        var psi = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }
        // Redocly CLI: no usage reports, no update notices in the output.
        psi.Environment["REDOCLY_TELEMETRY"] = "off";
        psi.Environment["REDOCLY_SUPPRESS_UPDATE_NOTICE"] = "true";
        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"Could not start {fileName}.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(Timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{fileName} {string.Join(' ', args)} did not finish within {Timeout}.");
        }
        var output = new StringBuilder().Append(await stdout).Append(await stderr).ToString();
        return (process.ExitCode, output);
    }

    private sealed class TempDirectory : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("newsletter-openapi-").FullName;

        public void Dispose()
        {
            try
            {
                Directory.Delete(Path, recursive: true);
            }
            catch (IOException)
            {
                // A leftover temp folder is harmless.
            }
        }
    }
}
