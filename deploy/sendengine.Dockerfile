# SendEngine image. Build context: the repository root, e.g.
#   docker build -f deploy/sendengine.Dockerfile -t newsletter-sendengine .
# Pinned (global.json asks for SDK 10.0.100); move both tags together, deliberately.
FROM mcr.microsoft.com/dotnet/sdk:10.0.100 AS build
WORKDIR /src
# Restore first, from the project files alone, so source edits do not invalidate the package layer.
COPY global.json Directory.Build.props Directory.Packages.props ./
COPY Shared.Contracts/Shared.Contracts.csproj Shared.Contracts/
COPY ServiceDefaults/ServiceDefaults.csproj ServiceDefaults/
COPY SendEngine/SendEngine.csproj SendEngine/
RUN dotnet restore SendEngine/SendEngine.csproj
COPY Shared.Contracts/ Shared.Contracts/
COPY ServiceDefaults/ ServiceDefaults/
COPY SendEngine/ SendEngine/
RUN dotnet publish SendEngine/SendEngine.csproj -c Release --no-restore -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0.0
WORKDIR /app
COPY --from=build /app .
ENV ASPNETCORE_URLS=http://+:7860
# The runtime reads this GC setting only from the environment (scripts/lib.sh send_engine_runtime_env sets the same):
# gen1's budget capped at 6 MB (hex), so a bulk job's dead gen0 survivors do not pile up in gen1
# (docs/send-engine.md, "Configuration").
ENV DOTNET_GCGen1MaxBudget=600000
EXPOSE 7860
# The aspnet images ship a non-root "app" user.
USER $APP_UID
ENTRYPOINT ["dotnet", "SendEngine.dll"]
