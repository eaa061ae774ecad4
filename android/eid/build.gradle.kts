// The Android library: the platform-neutral shell (src/main/kotlin), the
// Android-only keystore (src/androidMain/kotlin: framework only) and lifecycle
// hook (src/androidxMain/kotlin: needs androidx), the
// uniffi-generated bindings and the native libraries, both produced by
// ../build-native.sh into build/generated/uniffi and src/main/jniLibs.
//
// The JVM tests in src/jvmTest run through the Maven build in ../jvm (they need
// the host-built library and a local eid-server), not here.
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "dk.eid.authenticator"
    compileSdk = 35

    defaultConfig {
        minSdk = 26 // KeyGenParameterSpec with EC; StrongBox is used from 28 on when present.
        consumerProguardFiles("consumer-rules.pro")
    }

    sourceSets["main"].apply {
        kotlin.srcDirs(
            "src/main/kotlin",
            "src/androidMain/kotlin",
            "src/androidxMain/kotlin",
            layout.buildDirectory.dir("generated/uniffi/kotlin"),
        )
        jniLibs.srcDirs("src/main/jniLibs")
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    // uniffi's Kotlin bindings call the Rust library through JNA; the aar
    // carries JNA's own native parts for every ABI.
    implementation("net.java.dev.jna:jna:5.19.1@aar")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.11.0")
    implementation("androidx.lifecycle:lifecycle-process:2.8.7")
}

// Build the Rust library and the bindings before compiling Kotlin.
val buildNative by tasks.registering(Exec::class) {
    description = "Builds libeid_bindings.so for every ABI with cargo-ndk and generates the Kotlin bindings."
    workingDir = rootProject.projectDir
    commandLine("bash", "build-native.sh")
}
tasks.named("preBuild") { dependsOn(buildNative) }
