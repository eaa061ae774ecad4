// Gradle build of the Kotlin shell for Android apps. It cannot run on the
// project's build machines (no Android SDK there); see README.md.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "eid-authenticator-android"
include(":eid")
