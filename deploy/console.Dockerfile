# Console image (the operations console, a backend-for-frontend). Build context: the repository root, e.g.
#   docker build -f deploy/console.Dockerfile -t newsletter-console .
# Pinned (global.json asks for SDK 10.0.100); move both tags together, deliberately.
FROM mcr.microsoft.com/dotnet/sdk:10.0.100 AS build
WORKDIR /src
# Restore first, from the project files alone, so source edits do not invalidate the package layer.
COPY global.json Directory.Build.props Directory.Packages.props ./
COPY Shared.Contracts/Shared.Contracts.csproj Shared.Contracts/
COPY ServiceDefaults/ServiceDefaults.csproj ServiceDefaults/
COPY Console/Console.csproj Console/
RUN dotnet restore Console/Console.csproj
COPY Shared.Contracts/ Shared.Contracts/
COPY ServiceDefaults/ ServiceDefaults/
COPY Console/ Console/
RUN dotnet publish Console/Console.csproj -c Release --no-restore -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0.0
WORKDIR /app
COPY --from=build /app .
ENV ASPNETCORE_URLS=http://+:7870
EXPOSE 7870
# The aspnet images ship a non-root "app" user.
USER $APP_UID
ENTRYPOINT ["dotnet", "NewsletterConsole.dll"]
